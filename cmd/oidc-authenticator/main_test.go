package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/oidc-authenticator/oidc-authenticator/test/dex"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

func run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestInitWritesKubeconfigAndKeepsKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	out, err := run(t, "", "init", "--state-dir", dir, "--hostname", "127.0.0.1", "--address", "127.0.0.1:31000")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "apiserver-webhook-kubeconfig.yaml")
	for _, want := range []string{"--authentication-token-webhook-config-file=" + kubeconfig, "--authentication-token-webhook-version=v1", "clientCAFile: " + filepath.Join(dir, "ca.crt")} {
		if !strings.Contains(out, want) {
			t.Fatalf("init output lacks %q:\n%s", want, out)
		}
	}
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		if c.Server != "https://127.0.0.1:31000/authenticate" || len(c.CertificateAuthorityData) == 0 {
			t.Fatalf("cluster %+v", c)
		}
	}
	for _, name := range []string{"ca.key", "server.key", "apiserver-client.key", "apiserver-webhook-kubeconfig.yaml"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v; want 0600", name, err, st.Mode().Perm())
		}
	}
	key, _ := os.ReadFile(filepath.Join(dir, "server.key"))
	out, err = run(t, "", "init", "--state-dir", dir, "--hostname", "127.0.0.1", "--address", "127.0.0.1:31000")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "server.key"))
	if !bytes.Equal(key, again) || !strings.Contains(out, "kept") {
		t.Fatalf("a second init must keep existing keys:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	out, err := run(t, "", "version")
	if err != nil || !strings.HasPrefix(out, "oidc-authenticator ") {
		t.Fatalf("%q %v", out, err)
	}
	for _, want := range []string{"\nrevision: ", "\nbuilt: ", "\ngo: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
}

func TestServerRefusesBadConfiguration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(path, []byte("apiVersion: oidc-authenticator.io/v1alpha1\nkind: AuthenticatorConfiguration\njwt:\n- issuer: {url: http://x, audiences: [k]}\n  claimMappings: {username: {claim: sub}}\n"), 0o600)
	_, err := run(t, "", "server", "--config", path)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"jwt[0].issuer.url", "jwt[0].claimMappings.username.prefix"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %s", err, want)
		}
	}
}

// verify explains an accepted token and a denied one without printing either.
func TestVerifyExplains(t *testing.T) {
	d := dex.StartForTest(t, dex.Options{})
	dir := t.TempDir()
	path, mappingFile := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "oidc-auth.yaml")
	cfg := "apiVersion: oidc-authenticator.io/v1alpha1\nkind: AuthenticatorConfiguration\njwt:\n- issuer:\n    url: " + d.IssuerURL +
		"\n    audiences: [kubernetes]\n    certificateAuthority: |\n" + indentPEM(string(d.CAPEM)) +
		"  claimMappings:\n    username: {claim: email, prefix: \"\"}\n    groups: {claim: groups, prefix: \"oidc:\"}\n" +
		"mapping: {file: " + mappingFile + "}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mappingFile, []byte(mappingManifest("- email: alice@example.com\n      groups: [cluster-admins]\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	alice, err := d.PasswordGrant(ctx, "alice@example.com", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(t, alice.IDToken+"\n", "verify", "--config", path)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"[+] go-oidc: signature, iss, aud, exp and nbf hold", `[+] mapping: version `, `mapUsers[0] (email "alice@example.com") matched`,
		"result: AUTHENTICATED", "username: alice@example.com", "oidc:developers", "cluster-admins"} {
		if !strings.Contains(out, want) {
			t.Fatalf("verify output lacks %q:\n%s", want, out)
		}
	}
	bob, err := d.PasswordGrant(ctx, "bob@example.com", "bob-password")
	if err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "", "verify", "--config", path, bob.IDToken)
	if err == nil || !strings.Contains(out, "[-] username: email_not_verified") || !strings.Contains(out, "result: DENIED") {
		t.Fatalf("bob: %v\n%s", err, out)
	}
	if strings.Contains(out, bob.IDToken) || strings.Contains(out, alice.IDToken) {
		t.Fatal("verify printed a token")
	}
}

func indentPEM(pem string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(pem, "\n"), "\n") {
		b.WriteString("      " + l + "\n")
	}
	return b.String()
}

func mappingManifest(mapUsers string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: oidc-auth, namespace: kube-system}\ndata:\n  mapUsers: |\n    " + mapUsers
}

// mapping validate checks a manifest offline with the server's rules and names each problem.
func TestMappingValidate(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte(mappingManifest("- {issuer: https://dex.example.com, subject: abc, username: alice}\n")), 0o600)
	os.WriteFile(bad, []byte(mappingManifest("- {issuer: https://other.example.com, email: a@example.com, userName: alice}\n")), 0o600)

	out, err := run(t, "", "mapping", "validate", "--issuer", "https://dex.example.com", good)
	if err != nil || !strings.Contains(out, "ConfigMap kube-system/oidc-auth ("+good+") is valid: 1 mapUsers entries, 0 mapGroups entries") {
		t.Fatalf("good manifest: %v\n%s", err, out)
	}
	out, err = run(t, "", "mapping", "validate", "--issuer", "https://dex.example.com", bad)
	if err == nil {
		t.Fatalf("bad manifest accepted:\n%s", out)
	}
	for _, want := range []string{"is invalid; the server would refuse it", "mapUsers[0].issuer: \"https://other.example.com\" is not a configured issuer", "mapUsers[0].userName"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(t, string(must(os.ReadFile(good))), "mapping", "validate", "--issuer", "https://dex.example.com", "-")
	if err != nil {
		t.Errorf("from stdin: %v\n%s", err, out)
	}
}

// mapping validate works on the file alone: without --config or --issuer it checks everything
// but the issuer names, says so in a note, takes several paths (files and mounted
// directories) and fails when any one is invalid.
func TestMappingValidateWithoutIssuers(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte(mappingManifest("- {issuer: https://other.example.com, subject: abc, username: alice}\n")), 0o600)
	os.WriteFile(bad, []byte(mappingManifest("- {email: a@example.com, userName: alice}\n")+"binaryData:\n  x: aGVsbG8=\n"), 0o600)
	mounted := filepath.Join(dir, "mounted")
	os.MkdirAll(filepath.Join(mounted, "..2026_12_04"), 0o700)
	os.WriteFile(filepath.Join(mounted, "..2026_12_04", "mapGroups"), []byte("- {group: developers, groups: [dev-team]}\n"), 0o600)
	os.Symlink("..2026_12_04", filepath.Join(mounted, "..data"))
	os.Symlink("..data/mapGroups", filepath.Join(mounted, "mapGroups"))

	out, err := run(t, "", "mapping", "validate", good, mounted)
	if err != nil {
		t.Fatalf("valid file and directory: %v\n%s", err, out)
	}
	for _, want := range []string{
		"note: issuer fields are not checked; pass --config FILE",
		"ConfigMap kube-system/oidc-auth (" + good + ") is valid: 1 mapUsers entries",
		mounted + " is valid: 0 mapUsers entries, 1 mapGroups entries",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out, err = run(t, "", "mapping", "validate", good, bad)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 mappings invalid") {
		t.Fatalf("err = %v, want 1 of 2 invalid\n%s", err, out)
	}
	// Every problem at once, binaryData among them.
	for _, want := range []string{"binaryData.x: binaryData is not read", "mapUsers[0].userName"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "note:") {
		t.Errorf("no note about the unchecked issuers:\n%s", out)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// verify --mapping reads a local copy of the mapping instead of the configuration's live
// ConfigMap, so a token can be checked offline; without it (and without --kubeconfig, outside
// a pod) verify says in one line what to pass.
func TestVerifyLocalMapping(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", t.TempDir()) // no ~/.kube/config
	is := issuertest.New(t)
	dir := t.TempDir()
	path, mappingFile := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "oidc-auth.yaml")
	cfg := "apiVersion: oidc-authenticator.io/v1alpha1\nkind: AuthenticatorConfiguration\njwt:\n- issuer:\n    url: " + is.URL +
		"\n    audiences: [kubernetes]\n    certificateAuthority: |\n" + indentPEM(is.CAPEM) +
		"  claimMappings:\n    username: {claim: email, prefix: \"\"}\n    groups: {claim: groups, prefix: \"oidc:\"}\n" +
		"mapping: {configMap: kube-system/oidc-auth}\n"
	os.WriteFile(path, []byte(cfg), 0o600)
	os.WriteFile(mappingFile, []byte(mappingManifest("- email: alice@example.com\n      groups: [cluster-admins]\n")), 0o600)
	token := is.Token(t, nil)

	out, err := run(t, token, "verify", "--config", path)
	if err == nil || !strings.Contains(err.Error(), "pass --kubeconfig FILE to read the live ConfigMap, or --mapping FILE") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("without --mapping or --kubeconfig: err = %v\n%s", err, out)
	}

	out, err = run(t, token, "verify", "--config", path, "--mapping", mappingFile)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{`mapUsers[0] (email "alice@example.com") matched`, "result: AUTHENTICATED", "cluster-admins"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, token) {
		t.Fatal("verify printed the token")
	}
	if _, err := run(t, token, "verify", "--config", path, "--mapping", filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "--mapping") {
		t.Errorf("missing --mapping file: err = %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(mappingManifest("- {issuer: https://other.example.com, email: alice@example.com, userName: x}\n")), 0o600)
	_, err = run(t, token, "verify", "--config", path, "--mapping", bad)
	for _, want := range []string{"the server would refuse this mapping", "mapUsers[0].issuer", "mapUsers[0].userName"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("invalid --mapping file: err = %v, want it to name %q", err, want)
		}
	}
}

// An undecided answer says what kube-apiserver does with it: no caching (it does not retry).
func TestVerifyUndecidedWording(t *testing.T) {
	is := issuertest.New(t)
	is.SetDown(true)
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := "apiVersion: oidc-authenticator.io/v1alpha1\nkind: AuthenticatorConfiguration\njwt:\n- issuer:\n    url: " + is.URL +
		"\n    audiences: [kubernetes]\n    certificateAuthority: |\n" + indentPEM(is.CAPEM) +
		"  claimMappings:\n    username: {claim: email, prefix: \"\"}\n"
	os.WriteFile(path, []byte(cfg), 0o600)
	out, err := run(t, is.Token(t, nil), "verify", "--config", path, "--timeout", "500ms")
	if err == nil || !strings.Contains(out, "result: UNDECIDED (kube-apiserver does not cache this answer") || strings.Contains(out, "retry") {
		t.Fatalf("err = %v\n%s", err, out)
	}
}

// init is idempotent: run again with the same flags it rewrites nothing and says "kept" for
// every file; a new --hostname re-issues the serving certificate (same key) and updates the
// kubeconfig; a new --address only updates the kubeconfig.
func TestInitIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	initWith := func(hostname, address string) string {
		t.Helper()
		out, err := run(t, "", "init", "--state-dir", dir, "--hostname", hostname, "--address", address)
		if err != nil {
			t.Fatalf("init: %v\n%s", err, out)
		}
		return out
	}
	files := []string{"ca.crt", "ca.key", "server.crt", "server.key", "apiserver-client.crt", "apiserver-client.key", "apiserver-webhook-kubeconfig.yaml"}
	read := func() map[string]string {
		m := map[string]string{}
		for _, name := range files {
			m[name] = string(must(os.ReadFile(filepath.Join(dir, name))))
		}
		return m
	}
	wantLines := func(out string, verb string, names ...string) {
		t.Helper()
		for _, name := range names {
			if !strings.Contains(out, verb+strings.Repeat(" ", 10-len(verb))+filepath.Join(dir, name)) {
				t.Errorf("output does not say %q for %s:\n%s", verb, name, out)
			}
		}
	}

	wantLines(initWith("127.0.0.1", "127.0.0.1:31000"), "created", files...)
	first := read()
	wantLines(initWith("127.0.0.1", "127.0.0.1:31000"), "kept", files...)
	if again := read(); !maps.Equal(first, again) {
		t.Fatal("a second init with the same flags changed files")
	}

	out := initWith("webhook.kube-system.example", "127.0.0.1:31000")
	wantLines(out, "re-issued", "server.crt")
	wantLines(out, "updated", "apiserver-webhook-kubeconfig.yaml")
	wantLines(out, "kept", "ca.crt", "ca.key", "server.key", "apiserver-client.crt", "apiserver-client.key")
	second := read()
	if second["server.key"] != first["server.key"] || second["server.crt"] == first["server.crt"] {
		t.Error("the serving certificate must be re-issued for the same key")
	}
	cfg := must(clientcmd.LoadFromFile(filepath.Join(dir, "apiserver-webhook-kubeconfig.yaml")))
	if c := cfg.Clusters["oidc-authenticator"]; c == nil || c.Server != "https://webhook.kube-system.example:31000/authenticate" {
		t.Fatalf("kubeconfig clusters %+v", cfg.Clusters)
	}

	out = initWith("webhook.kube-system.example", "127.0.0.1:32000")
	wantLines(out, "updated", "apiserver-webhook-kubeconfig.yaml")
	wantLines(out, "kept", "server.crt", "server.key")
}

// With --log-format json, what client-go logs through klog comes out as JSON lines of the
// server's log, with its key-value pairs as fields.
func TestKlogFollowsLogFormat(t *testing.T) {
	var buf bytes.Buffer
	lf := logFlags{format: "json"}
	log, err := lf.logger(&buf)
	if err != nil {
		t.Fatal(err)
	}
	routeKlog(log)
	t.Cleanup(klog.ClearLogger)
	klog.InfoS("watch of ConfigMap ended", "namespace", "kube-system")
	klog.ErrorS(errors.New("connection refused"), "failed to list")
	klog.Flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	var info, failure map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &info); err != nil || info["msg"] != "watch of ConfigMap ended" || info["namespace"] != "kube-system" || info["level"] != "INFO" {
		t.Errorf("info line %q: %v", lines[0], err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &failure); err != nil || failure["msg"] != "failed to list" || failure["level"] != "ERROR" || !strings.Contains(fmt.Sprint(failure["err"]), "connection refused") {
		t.Errorf("error line %q: %v", lines[1], err)
	}
}

// verify reads mapping.configMap with --kubeconfig, in a pod with its service account, else
// with the user's default kubeconfig (named in a note); --mapping wins over all of them.
func TestVerifyChoosesTheMapping(t *testing.T) {
	withConfigMap := func() *config.Configuration {
		return &config.Configuration{Mapping: config.Mapping{ConfigMap: "kube-system/oidc-auth"}}
	}
	local := filepath.Join(t.TempDir(), "oidc-auth.yaml")
	os.WriteFile(local, []byte(mappingManifest("- {subject: a, username: x}\n")), 0o600)

	cfg := withConfigMap()
	use, note, err := chooseMapping(cfg, local, "/k", false, "/home/u/.kube/config")
	if err != nil || use != "" || note != "" || cfg.Mapping.File != local || cfg.Mapping.ConfigMap != "" {
		t.Errorf("--mapping: %q %q %v %+v", use, note, err, cfg.Mapping)
	}
	if use, _, err := chooseMapping(withConfigMap(), "", "/k", false, "/home/u/.kube/config"); err != nil || use != "/k" {
		t.Errorf("--kubeconfig: %q %v", use, err)
	}
	if use, _, err := chooseMapping(withConfigMap(), "", "", true, "/home/u/.kube/config"); err != nil || use != "" {
		t.Errorf("in a pod: %q %v", use, err)
	}
	use, note, err = chooseMapping(withConfigMap(), "", "", false, "/home/u/.kube/config")
	if err != nil || use != "/home/u/.kube/config" || !strings.Contains(note, "with the kubeconfig /home/u/.kube/config") {
		t.Errorf("default kubeconfig: %q %q %v", use, note, err)
	}
	if _, _, err := chooseMapping(withConfigMap(), "", "", false, ""); err == nil || !strings.Contains(err.Error(), "pass --kubeconfig FILE") {
		t.Errorf("nothing: %v", err)
	}
	if use, _, err := chooseMapping(&config.Configuration{}, "", "", false, ""); err != nil || use != "" {
		t.Errorf("no mapping source: %q %v", use, err)
	}

	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("KUBECONFIG", "")
	if got := defaultKubeconfig(); got != "" {
		t.Errorf("no kubeconfig anywhere: %q", got)
	}
	os.MkdirAll(filepath.Join(dir, ".kube"), 0o700)
	os.WriteFile(filepath.Join(dir, ".kube", "config"), []byte("apiVersion: v1\nkind: Config\n"), 0o600)
	if got := defaultKubeconfig(); got != filepath.Join(dir, ".kube", "config") {
		t.Errorf("~/.kube/config: %q", got)
	}
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("apiVersion: v1\nkind: Config\n"), 0o600)
	t.Setenv("KUBECONFIG", filepath.Join(dir, "missing")+string(filepath.ListSeparator)+other)
	if got := defaultKubeconfig(); got != other {
		t.Errorf("$KUBECONFIG: %q", got)
	}
}

// mapping validate --merge checks several ConfigMaps as the one mapping the server merges
// from mapping.configMapSelector: in name order, duplicates across them refused.
func TestMappingValidateMerge(t *testing.T) {
	dir := t.TempDir()
	cm := func(name, users string) string {
		path := filepath.Join(dir, name+".yaml")
		os.WriteFile(path, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "+name+", namespace: kube-system}\ndata:\n  mapUsers: |\n    "+users), 0o600)
		return path
	}
	b := cm("mapping-b", "- {subject: bob, username: bob}\n")
	a := cm("mapping-a", "- {subject: alice, username: alice}\n")
	dup := cm("mapping-c", "- {subject: alice, username: alice2}\n")

	out, err := run(t, "", "mapping", "validate", "--merge", b, a)
	if err != nil || !strings.Contains(out, "the mapping merged from 2 ConfigMaps (kube-system/mapping-a, kube-system/mapping-b, in this order) is valid: 2 mapUsers entries") {
		t.Fatalf("valid set: %v\n%s", err, out)
	}
	// Each is valid alone; merged, alice is mapped twice.
	if out, err := run(t, "", "mapping", "validate", a, dup); err != nil {
		t.Fatalf("each alone: %v\n%s", err, out)
	}
	out, err = run(t, "", "mapping", "validate", "--merge", dup, a, b)
	if err == nil {
		t.Fatalf("a duplicate across ConfigMaps accepted:\n%s", out)
	}
	if want := `ConfigMap kube-system/mapping-c: mapUsers[0].subject: subject "alice" is already mapped by mapUsers[0] of ConfigMap kube-system/mapping-a`; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}
