//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/oidc-authenticator/oidc-authenticator/test/dex"
)

// world is everything one run of the scenarios needs: the shared etcd and Dex instances,
// and one kube-apiserver with its webhook per TokenReview version.
type world struct {
	t       *testing.T
	root    string
	dir     string
	bins    bins
	etcdURL string
	dex     *dex.Server // the trusted issuer (keys rotate every 20 s)
	short   *dex.Server // a second trusted issuer whose id_tokens live 4 s
	stray   *dex.Server // an issuer the webhook does not trust
	state   string      // the webhook's state dir, written by `oidc-authenticator init`

	// per version
	version     string
	api         *apiserver
	admin       string // admin kubeconfig
	user        string // kubeconfig with no credentials; tokens come with --token
	saConfig    string // kubeconfig of the webhook's ServiceAccount
	webhook     *proc
	webhookPort int
	metricsPort int // the webhook's metrics and probes listener
	// selector, when set, makes the webhook read mapping.configMapSelector (kube-system, this
	// label selector) instead of the ConfigMap oidc-auth.
	selector string
}

// newWorld finds the binaries, makes the run's directory under .e2e/ (named from prefix,
// kept with every log when the test fails, else removed) and starts etcd in it.
func newWorld(t *testing.T, prefix string) *world {
	t.Helper()
	root, b := repoBins(t)
	if err := os.MkdirAll(filepath.Join(root, ".e2e"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(filepath.Join(root, ".e2e"), prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			fmt.Printf("%s: logs of every component kept in %s\n", prefix, dir)
			return
		}
		os.RemoveAll(dir)
	})
	etcd, etcdURL, err := startEtcd(b, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.stop() })
	return &world{t: t, root: root, dir: dir, bins: b, etcdURL: etcdURL}
}

var otherClient = dex.Client{ID: "other-client", Secret: "other-secret"}

func users() []dex.User {
	return append(dex.DefaultUsers(), dex.User{Email: "carol@example.com", Password: "carol-password", Username: "carol", EmailVerified: true})
}

// webhookConfig writes the webhook's configuration file.
func (w *world) webhookConfig(requireMatch bool) string {
	jwt := func(d *dex.Server) map[string]any {
		return map[string]any{
			"issuer": map[string]any{"url": d.IssuerURL, "audiences": []string{"kubernetes"}, "certificateAuthority": string(d.CAPEM)},
			"claimMappings": map[string]any{
				"username": map[string]any{"claim": "email", "prefix": ""},
				"groups":   map[string]any{"claim": "groups", "prefix": "oidc:"},
				"uid":      map[string]any{"claim": "sub"},
			},
		}
	}
	cfg := map[string]any{
		"apiVersion": "oidc-authenticator.io/v1alpha1", "kind": "AuthenticatorConfiguration",
		"server": map[string]any{"address": "127.0.0.1:" + strconv.Itoa(w.webhookPort), "stateDir": w.state, "clientCAFile": filepath.Join(w.state, "ca.crt"),
			"metricsAddress": "127.0.0.1:" + strconv.Itoa(w.metricsPort)},
		"jwt":     []any{jwt(w.dex), jwt(w.short)},
		"mapping": map[string]any{"configMap": "kube-system/oidc-auth", "requireMatch": requireMatch},
		"cache":   map[string]any{"ttl": "2m"},
	}
	if w.selector != "" {
		cfg["mapping"] = map[string]any{"configMapSelector": map[string]any{"namespace": "kube-system", "labelSelector": w.selector}, "requireMatch": requireMatch}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	path := filepath.Join(w.dir, w.version, "webhook-config.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// startWebhook starts the webhook binary and waits until it is ready.
func (w *world) startWebhook(requireMatch bool) {
	w.t.Helper()
	p, err := startProc("oidc-authenticator-"+w.version, filepath.Join(w.dir, w.version, "oidc-authenticator.log"), w.bins.authenticator,
		// One instance at a time here: on SIGTERM it waits 2 s at most for a successor.
		"server", "--config", w.webhookConfig(requireMatch), "--kubeconfig", w.saConfig, "--shutdown-delay", "2s")
	if err != nil {
		w.t.Fatal(err)
	}
	w.webhook = p
	if err := waitHTTP("http://127.0.0.1:"+strconv.Itoa(w.metricsPort)+"/readyz", nil, 30*time.Second, p); err != nil {
		w.t.Fatalf("webhook: %v\n%s", err, p.tail(30))
	}
}

func (w *world) stopWebhook() {
	w.t.Helper()
	if err := w.webhook.stop(); err != nil {
		w.t.Errorf("the webhook did not exit cleanly on SIGTERM: %v", err)
	}
}

func (w *world) restartWebhook(requireMatch bool) {
	w.t.Helper()
	w.stopWebhook()
	w.startWebhook(requireMatch)
}

// token logs in as the seeds do: the resource-owner password grant.
func (w *world) token(d *dex.Server, email string) string {
	w.t.Helper()
	pw := strings.SplitN(email, "@", 2)[0] + "-password"
	tok, err := d.PasswordGrant(context.Background(), email, pw)
	if err != nil {
		w.t.Fatalf("password grant for %s: %v", email, err)
	}
	return tok.IDToken
}

func (w *world) kubectlAdmin(stdin string, args ...string) string {
	w.t.Helper()
	out, err := kubectl(w.t, w.bins, w.admin, stdin, args...)
	if err != nil {
		w.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// asUser runs kubectl with a bearer token, as a person would.
func (w *world) asUser(token string, args ...string) (string, error) {
	w.t.Helper()
	return kubectl(w.t, w.bins, w.user, "", append([]string{"--token", token}, args...)...)
}

type whoami struct {
	Username string
	Groups   []string
}

func (w *world) whoami(token string) (whoami, error) {
	w.t.Helper()
	out, err := w.asUser(token, "auth", "whoami", "-o", "json")
	if err != nil {
		return whoami{}, fmt.Errorf("%v: %s", err, out)
	}
	return parseWhoami(out)
}

// parseWhoami decodes the output of kubectl auth whoami -o json.
func parseWhoami(out string) (whoami, error) {
	var r struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return whoami{}, fmt.Errorf("whoami output: %v: %s", err, out)
	}
	return whoami{Username: r.Status.UserInfo.Username, Groups: r.Status.UserInfo.Groups}, nil
}

// eventually retries f every 500 ms until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (w *world) applyMapping(mapUsers, mapGroups string) {
	w.t.Helper()
	w.applyConfigMap("oidc-auth", nil, mapUsers, mapGroups)
}

// applyConfigMap applies a mapping ConfigMap of kube-system with labels.
func (w *world) applyConfigMap(name string, labels map[string]string, mapUsers, mapGroups string) {
	w.t.Helper()
	meta := map[string]any{"name": name, "namespace": "kube-system"}
	if labels != nil {
		meta["labels"] = labels
	}
	cm := map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": meta,
		"data":     map[string]any{"mapUsers": mapUsers, "mapGroups": mapGroups},
	}
	b, _ := yaml.Marshal(cm)
	w.kubectlAdmin(string(b), "apply", "-f", "-")
}

func unauthorized(out string, err error) error {
	if err == nil {
		return fmt.Errorf("kubectl succeeded; want Unauthorized:\n%s", out)
	}
	if !strings.Contains(out, "Unauthorized") {
		return fmt.Errorf("want Unauthorized, got %v:\n%s", err, out)
	}
	return nil
}
