package config_test

import (
	"strings"
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
)

const valid = `
apiVersion: oidc-authenticator.io/v1alpha1
kind: AuthenticatorConfiguration
jwt:
- issuer:
    url: https://dex.example.com/dex
    audiences: [kubernetes]
  claimMappings:
    username: {claim: email, prefix: ""}
    groups: {claim: groups, prefix: "oidc:"}
    uid: {claim: sub}
`

func TestDefaults(t *testing.T) {
	cfg, err := config.Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Address != config.DefaultAddress || cfg.Server.StateDir != config.DefaultStateDir {
		t.Fatalf("server defaults: %+v", cfg.Server)
	}
	if cfg.Server.CertFile != "/var/lib/oidc-authenticator/server.crt" || !cfg.GeneratesServingCert() {
		t.Fatalf("cert defaults: %+v", cfg.Server)
	}
	if cfg.Cache.TTL.Duration.String() != "2m0s" || *cfg.Cache.MaxEntries != config.DefaultCacheMaxEntries {
		t.Fatalf("cache defaults: %+v", cfg.Cache)
	}
}

// Each case breaks one rule of kube-apiserver's AuthenticationConfiguration validation (or
// of our own sections) and expects an error naming the field.
func TestValidationNamesTheField(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		wantErr string
	}{
		{"unknown field", func(s string) string { return s + "bogus: 1\n" }, `unknown field "bogus"`},
		{"duplicate field", func(s string) string { return s + "kind: AuthenticatorConfiguration\n" }, "kind"},
		{"wrong apiVersion", r("oidc-authenticator.io/v1alpha1", "v1"), "apiVersion"},
		{"wrong kind", r("kind: AuthenticatorConfiguration", "kind: Config"), "kind"},
		{"no issuers", func(string) string {
			return "apiVersion: oidc-authenticator.io/v1alpha1\nkind: AuthenticatorConfiguration\n"
		}, "jwt: Required value"},
		{"http issuer", r("url: https://dex", "url: http://dex"), "jwt[0].issuer.url: Invalid value"},
		{"issuer with query", r("/dex\n", "/dex?x=1\n"), "must not contain a query"},
		{"issuer with fragment", r("/dex\n", "/dex#x\n"), "must not contain a fragment"},
		{"issuer with userinfo", r("https://dex", "https://u:p@dex"), "username or password"},
		{"discovery equals issuer", r("audiences: [kubernetes]", "discoveryURL: https://dex.example.com/dex/\n    audiences: [kubernetes]"), "jwt[0].issuer.discoveryURL"},
		{"no audiences", r("audiences: [kubernetes]", "audiences: []"), "jwt[0].issuer.audiences: Required"},
		{"empty audience", r("audiences: [kubernetes]", `audiences: [""]`), "jwt[0].issuer.audiences[0]"},
		{"duplicate audience", r("audiences: [kubernetes]", "audiences: [a, a]\n    audienceMatchPolicy: MatchAny"), "jwt[0].issuer.audiences[1]: Duplicate"},
		{"two audiences without MatchAny", r("audiences: [kubernetes]", "audiences: [a, b]"), "jwt[0].issuer.audienceMatchPolicy"},
		{"unknown match policy", r("audiences: [kubernetes]", "audiences: [a]\n    audienceMatchPolicy: MatchAll"), "audienceMatchPolicy: Unsupported value"},
		{"egress through the cluster", r("audiences: [kubernetes]", "audiences: [kubernetes]\n    egressSelectorType: cluster"), "jwt[0].issuer.egressSelectorType: Invalid value: \"cluster\": the webhook fetches discovery and keys directly from the control-plane node"},
		{"unknown egress", r("audiences: [kubernetes]", "audiences: [kubernetes]\n    egressSelectorType: etcd"), "jwt[0].issuer.egressSelectorType: Unsupported value: \"etcd\": supported values: \"controlplane\""},
		{"bad CA", r("audiences: [kubernetes]", "audiences: [kubernetes]\n    certificateAuthority: not-pem"), "jwt[0].issuer.certificateAuthority"},
		{"username prefix missing", r(`username: {claim: email, prefix: ""}`, `username: {claim: email}`), "jwt[0].claimMappings.username.prefix: Required"},
		{"username claim missing", r(`username: {claim: email, prefix: ""}`, `username: {prefix: ""}`), "jwt[0].claimMappings.username.claim: Required"},
		{"groups prefix missing", r(`groups: {claim: groups, prefix: "oidc:"}`, `groups: {claim: groups}`), "jwt[0].claimMappings.groups.prefix: Required"},
		{"rule without claim", r("claimMappings:", "claimValidationRules:\n  - requiredValue: x\n  claimMappings:"), "jwt[0].claimValidationRules[0].claim"},
		{"rule message with claim", r("claimMappings:", "claimValidationRules:\n  - {claim: hd, requiredValue: x, message: m}\n  claimMappings:"), "claimValidationRules[0].message"},
		{"duplicate rule", r("claimMappings:", "claimValidationRules:\n  - {claim: hd, requiredValue: x}\n  - {claim: hd, requiredValue: y}\n  claimMappings:"), "claimValidationRules[1].claim: Duplicate"},
		{"duplicate issuer", func(s string) string {
			i := strings.Index(s, "- issuer:")
			return s + s[i:]
		}, "jwt[1].issuer.url: Duplicate"},
		{"bad address", func(s string) string { return s + "server: {address: nowhere}\n" }, "server.address"},
		{"cert without key", func(s string) string { return s + "server: {certFile: /x.crt}\n" }, "server.keyFile"},
		{"negative ttl", func(s string) string { return s + "cache: {ttl: -1s}\n" }, "cache.ttl"},
		{"no verification allowed", func(s string) string { return s + "server: {maxInFlightVerifications: 0}\n" }, "server.maxInFlightVerifications"},
		{"both mapping sources", func(s string) string { return s + "mapping: {configMap: a/b, file: /x}\n" }, "mapping: Forbidden"},
		{"requireMatch without a source", func(s string) string { return s + "mapping: {requireMatch: true}\n" }, "mapping.requireMatch"},
		{"bad configMap ref", func(s string) string { return s + "mapping: {configMap: oidc-auth}\n" }, "mapping.configMap"},
		{"configMap and a selector", func(s string) string {
			return s + "mapping: {configMap: a/b, configMapSelector: {namespace: a, labelSelector: x=y}}\n"
		}, "mapping: Forbidden: set one of configMap, configMapSelector and file, not configMap and configMapSelector"},
		{"selector without namespace", func(s string) string { return s + "mapping: {configMapSelector: {labelSelector: x=y}}\n" }, "mapping.configMapSelector.namespace: Required"},
		{"selector with a bad namespace", func(s string) string {
			return s + "mapping: {configMapSelector: {namespace: Kube_System, labelSelector: x=y}}\n"
		}, "mapping.configMapSelector.namespace: Invalid value"},
		{"selector without labels", func(s string) string { return s + "mapping: {configMapSelector: {namespace: a}}\n" }, "mapping.configMapSelector.labelSelector: Required"},
		{"selector that does not parse", func(s string) string {
			return s + "mapping: {configMapSelector: {namespace: a, labelSelector: 'x in (y'}}\n"
		}, "mapping.configMapSelector.labelSelector: Invalid value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.edit(valid)))
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

func r(old, new string) func(string) string {
	return func(s string) string {
		if !strings.Contains(s, old) {
			panic("test edit does not apply: " + old)
		}
		return strings.Replace(s, old, new, 1)
	}
}

// Rule: an entry pasted from kube-apiserver with egressSelectorType: controlplane loads: the
// webhook runs on the control plane and reaches the issuer directly.
func TestEgressSelectorControlPlane(t *testing.T) {
	cfg, err := config.Parse([]byte(strings.Replace(valid, "audiences: [kubernetes]", "audiences: [kubernetes]\n    egressSelectorType: controlplane", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.JWT[0].Issuer.EgressSelectorType; got != config.EgressSelectorControlPlane {
		t.Errorf("egressSelectorType = %q", got)
	}
}

// Rule: a client certificate is required unless clientAuth says none; the metrics listener
// is on loopback unless set, and "" turns it off; contradictions are refused, naming the field.
func TestClientAuthAndMetricsAddress(t *testing.T) {
	cfg, err := config.Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.ClientAuth != config.ClientAuthRequired || cfg.ClientCAFile() != "/var/lib/oidc-authenticator/ca.crt" {
		t.Fatalf("clientAuth %q, client CA %q; want required, the state directory's ca.crt", cfg.Server.ClientAuth, cfg.ClientCAFile())
	}
	if *cfg.Server.MetricsAddress != config.DefaultMetricsAddress {
		t.Fatalf("metricsAddress %q", *cfg.Server.MetricsAddress)
	}
	cfg, err = config.Parse([]byte(valid + "server:\n  clientAuth: none\n  metricsAddress: \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientCAFile() != "" || *cfg.Server.MetricsAddress != "" {
		t.Fatalf("clientAuth none gives client CA %q; metricsAddress %q", cfg.ClientCAFile(), *cfg.Server.MetricsAddress)
	}
	cfg, err = config.Parse([]byte(valid + "server:\n  clientCAFile: /etc/ca.pem\n"))
	if err != nil || cfg.ClientCAFile() != "/etc/ca.pem" {
		t.Fatalf("clientCAFile: %v, %q", err, cfg.ClientCAFile())
	}
	for _, tc := range []struct{ server, want string }{
		{"  clientAuth: optional\n", "server.clientAuth: Unsupported value"},
		{"  clientAuth: none\n  clientCAFile: /etc/ca.pem\n", "server.clientAuth: Invalid value"},
		{"  metricsAddress: localhost\n", "server.metricsAddress: Invalid value"},
		{"  address: 127.0.0.1:9000\n  metricsAddress: 127.0.0.1:9000\n", "server.metricsAddress: Duplicate value"},
	} {
		if _, err := config.Parse([]byte(valid + "server:\n" + tc.server)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.server, err, tc.want)
		}
	}
}

// Rule: mapping.configMapSelector names a namespace and a label selector.
func TestMappingConfigMapSelector(t *testing.T) {
	cfg, err := config.Parse([]byte(valid + "mapping:\n  configMapSelector:\n    namespace: kube-system\n    labelSelector: oidc-authenticator.io/mapping=true\n  requireMatch: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Mapping.ConfigMapSelector
	if s == nil || s.Namespace != "kube-system" || s.LabelSelector != "oidc-authenticator.io/mapping=true" {
		t.Fatalf("configMapSelector = %+v", s)
	}
}
