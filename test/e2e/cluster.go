//go:build e2e || e2enode

package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/oidc-authenticator/oidc-authenticator/test/dex"
)

// bins locates the programs the harness runs. `make e2e` builds them into bin/.
type bins struct {
	apiserver, authenticator, etcd, kubectl string
}

func findBins(root string) (bins, error) {
	b := bins{
		apiserver:     envOr("KUBE_APISERVER_BIN", filepath.Join(root, "bin", "kube-apiserver")),
		authenticator: envOr("OIDC_AUTHENTICATOR_BIN", filepath.Join(root, "bin", "oidc-authenticator")),
		etcd:          envOr("ETCD_BIN", "etcd"),
		kubectl:       envOr("KUBECTL_BIN", "kubectl"),
	}
	for _, p := range []*string{&b.apiserver, &b.authenticator, &b.etcd, &b.kubectl} {
		full, err := exec.LookPath(*p)
		if err != nil {
			return b, fmt.Errorf("%s is missing (run `make e2e`, which builds or installs it): %w", *p, err)
		}
		*p = full
	}
	return b, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startEtcd runs etcd on loopback ports in dir.
func startEtcd(b bins, dir string) (*proc, string, error) {
	client, err := freePort()
	if err != nil {
		return nil, "", err
	}
	peer, err := freePort()
	if err != nil {
		return nil, "", err
	}
	url := "http://127.0.0.1:" + strconv.Itoa(client)
	p, err := startProc("etcd", filepath.Join(dir, "etcd.log"), b.etcd,
		"--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", url, "--advertise-client-urls", url,
		"--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peer),
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peer),
		"--initial-cluster", "default=http://127.0.0.1:"+strconv.Itoa(peer))
	if err != nil {
		return nil, "", err
	}
	if err := waitHTTP(url+"/health", nil, 30*time.Second, p); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("etcd: %w\n%s", err, p.tail(20))
	}
	return p, url, nil
}

// apiserver is a running kube-apiserver wired to the webhook.
type apiserver struct {
	proc       *proc
	url        string
	caFile     string
	adminToken string
	dir        string
}

// startAPIServer runs kube-apiserver with RBAC, a static admin token and the webhook
// kubeconfig `oidc-authenticator init` wrote, sending TokenReviews in webhookVersion.
func startAPIServer(b bins, dir, etcdURL, webhookKubeconfig, webhookVersion string) (*apiserver, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	saKey := filepath.Join(dir, "sa.key")
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	saPub := filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return nil, err
	}
	admin := "admin-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(admin+`,e2e-admin,e2e-admin,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "certs")
	p, err := startProc("kube-apiserver-"+webhookVersion, filepath.Join(dir, "kube-apiserver.log"), b.apiserver,
		"--etcd-servers="+etcdURL, "--etcd-prefix=/registry-"+webhookVersion,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port), "--endpoint-reconciler-type=none",
		"--cert-dir="+certDir, "--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--token-auth-file="+tokens,
		"--authentication-token-webhook-config-file="+webhookKubeconfig,
		"--authentication-token-webhook-version="+webhookVersion,
		"--authentication-token-webhook-cache-ttl=1s",
		"--authorization-mode=RBAC",
		"--enable-priority-and-fairness=false",
	)
	if err != nil {
		return nil, err
	}
	a := &apiserver{proc: p, url: "https://127.0.0.1:" + strconv.Itoa(port), adminToken: admin, dir: dir,
		caFile: filepath.Join(certDir, "apiserver.crt")}
	hdr := http.Header{"Authorization": {"Bearer " + admin}}
	if err := waitHTTP(a.url+"/readyz", hdr, 90*time.Second, p); err != nil {
		p.stop()
		return nil, fmt.Errorf("kube-apiserver: %w\n%s", err, p.tail(30))
	}
	return a, nil
}

// kubeconfig writes a kubeconfig for the apiserver with the given user stanza.
func (a *apiserver) kubeconfig(path string, user map[string]any) error {
	cfg := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "e2e",
		"clusters": []any{map[string]any{"name": "e2e", "cluster": map[string]any{"server": a.url, "certificate-authority": a.caFile}}},
		"users":    []any{map[string]any{"name": "u", "user": user}},
		"contexts": []any{map[string]any{"name": "e2e", "context": map[string]any{"cluster": "e2e", "user": "u"}}},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// waitHTTP polls url (TLS not verified: readiness only) until it answers 200.
func waitHTTP(url string, hdr http.Header, timeout time.Duration, p *proc) error {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // readiness polling only
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %s", url, timeout, last)
}

// kubectl runs kubectl with a kubeconfig and returns its combined output.
func kubectl(t *testing.T, b bins, kubeconfig string, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("kubectl %s hung for 60s", strings.Join(args, " "))
	}
	return string(out), err
}

// repoBins returns the repository's root and the binaries the end-to-end tests run.
func repoBins(t *testing.T) (string, bins) {
	t.Helper()
	root, err := dex.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := findBins(root)
	if err != nil {
		t.Fatal(err)
	}
	return root, b
}
