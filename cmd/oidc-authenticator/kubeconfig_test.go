package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/oidc-authenticator/oidc-authenticator/test/dex"
)

const existingKubeconfig = `apiVersion: v1
kind: Config
current-context: admin
clusters:
- name: prod
  cluster:
    server: https://prod.example.com:6443
    certificate-authority: /etc/prod-ca.crt
users:
- name: admin
  user:
    token: admin-token
contexts:
- name: admin
  context:
    cluster: prod
    user: admin
`

func loadKubeconfig(t *testing.T, path string) *clientcmdapi.Config {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// kubeconfig adds the exec user and a context, updates them on a second run, and leaves every
// other entry as it was.
func TestKubeconfigWritesTheExecUser(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config")
	if err := os.WriteFile(path, []byte(existingKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	out, err := run(t, "", "kubeconfig", "--kubeconfig", path, "--issuer-url", "https://dex.example.com/dex", "--client-id", "kubernetes",
		"--client-secret", "kubernetes-secret", "--certificate-authority", "dex-ca.crt", "--grant-type", "password",
		"--username", "alice@example.com", "--password", "alice-password", "--context", "alice", "--exec-command", "/usr/local/bin/oidc-authenticator")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{`added user "oidc" in ` + path, `context "alice": cluster "prod", user "oidc"`, "warning: the password is stored in clear text"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	cfg := loadKubeconfig(t, path)
	exec := cfg.AuthInfos["oidc"].Exec
	wantArgs := []string{"token", "--certificate-authority=" + filepath.Join(dir, "dex-ca.crt"), "--client-id=kubernetes", "--client-secret=kubernetes-secret",
		"--grant-type=password", "--issuer-url=https://dex.example.com/dex", "--username=alice@example.com"}
	if exec == nil || exec.APIVersion != "client.authentication.k8s.io/v1" || exec.Command != "/usr/local/bin/oidc-authenticator" ||
		!slices.Equal(exec.Args, wantArgs) || exec.InteractiveMode != clientcmdapi.IfAvailableExecInteractiveMode ||
		len(exec.Env) != 1 || exec.Env[0] != (clientcmdapi.ExecEnvVar{Name: "OIDC_PASSWORD", Value: "alice-password"}) {
		t.Fatalf("exec stanza %+v\nwant args %q", exec, wantArgs)
	}
	if c := cfg.Contexts["alice"]; c == nil || c.Cluster != "prod" || c.AuthInfo != "oidc" {
		t.Errorf("context alice = %+v", c)
	}
	assertUntouched(t, cfg)
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, want 0600", st.Mode().Perm())
	}

	// Again, through $KUBECONFIG, for another user name: the entry is replaced, not duplicated.
	t.Setenv("KUBECONFIG", path)
	out, err = run(t, "", "kubeconfig", "--issuer-url", "https://dex.example.com/dex", "--client-id", "kubernetes",
		"--username", "bob@example.com", "--context", "alice", "--exec-command", "oidc-authenticator")
	if err != nil || !strings.Contains(out, `updated user "oidc"`) {
		t.Fatalf("%v\n%s", err, out)
	}
	cfg = loadKubeconfig(t, path)
	if exec := cfg.AuthInfos["oidc"].Exec; len(cfg.AuthInfos) != 2 || exec.Env != nil ||
		!slices.Equal(exec.Args, []string{"token", "--client-id=kubernetes", "--issuer-url=https://dex.example.com/dex", "--username=bob@example.com"}) {
		t.Errorf("after the update: %d users, exec %+v", len(cfg.AuthInfos), exec)
	}
	assertUntouched(t, cfg)

	// A context needs a cluster.
	empty := filepath.Join(dir, "empty")
	if out, err := run(t, "", "kubeconfig", "--kubeconfig", empty, "--issuer-url", "https://x", "--client-id", "k", "--context", "c"); err == nil || !strings.Contains(err.Error(), "pass --cluster") {
		t.Errorf("a context without a cluster: %v\n%s", err, out)
	}
}

func assertUntouched(t *testing.T, cfg *clientcmdapi.Config) {
	t.Helper()
	if cfg.CurrentContext != "admin" || cfg.AuthInfos["admin"].Token != "admin-token" ||
		cfg.Clusters["prod"].Server != "https://prod.example.com:6443" || cfg.Clusters["prod"].CertificateAuthority != "/etc/prod-ca.crt" ||
		cfg.Contexts["admin"].AuthInfo != "admin" || cfg.Contexts["admin"].Cluster != "prod" {
		t.Errorf("the other entries changed: current-context %q, admin %+v, prod %+v, context admin %+v",
			cfg.CurrentContext, cfg.AuthInfos["admin"], cfg.Clusters["prod"], cfg.Contexts["admin"])
	}
}

// The exec stanza that kubeconfig writes works in client-go: it runs the plugin (this test
// binary as oidc-authenticator), which logs in to Dex, and sends the id_token as bearer token.
func TestKubeconfigExecStanzaWorksInClientGo(t *testing.T) {
	d := startIssuer(t, dex.Options{})
	var (
		mu   sync.Mutex
		seen []string
	)
	apiserver := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer apiserver.Close()
	path := filepath.Join(t.TempDir(), "config")
	cluster := clientcmdapi.NewConfig()
	cluster.Clusters["test"] = &clientcmdapi.Cluster{Server: apiserver.URL,
		CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: apiserver.Certificate().Raw})}
	if err := clientcmd.WriteToFile(*cluster, path); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envRunMain, "1") // client-go passes its environment to the plugin
	out, err := run(t, "", "kubeconfig", "--kubeconfig", path, "--context", "dev", "--cluster", "test", "--exec-command", self,
		"--issuer-url", d.IssuerURL, "--client-id", d.ClientID, "--client-secret", d.ClientSecret, "--certificate-authority", d.CAFile,
		"--token-cache-dir", d.cacheDir, "--username", "alice@example.com", "--password", "alice-password")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	restConfig, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: path}, &clientcmd.ConfigOverrides{CurrentContext: "dev"}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(restConfig)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(apiserver.URL + "/api")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || !strings.HasPrefix(seen[0], "Bearer ") {
		t.Fatalf("Authorization headers %q", seen)
	}
	if c := claims(t, strings.TrimPrefix(seen[0], "Bearer ")); c["email"] != "alice@example.com" || c["iss"] != d.IssuerURL {
		t.Errorf("the bearer token's claims: %v", c)
	}
	if data, _ := os.ReadFile(path); strings.Contains(string(data), "eyJ") {
		t.Error("a token was written into the kubeconfig")
	}
}
