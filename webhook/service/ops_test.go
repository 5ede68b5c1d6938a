package service_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/pki"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/service"
)

// opsService is a running service against an in-process issuer, configured by server (the
// lines under server: besides address, metricsAddress and stateDir).
type opsService struct {
	url, metricsURL string
	files           pki.Files
	logs            *syncBuffer
	issuer          *issuertest.Issuer
	// run's error, once it stopped
	done chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startOps(t *testing.T, server string, opts service.Options) *opsService {
	t.Helper()
	return startOpsWith(t, issuertest.New(t), server, opts)
}

func startOpsWith(t *testing.T, is *issuertest.Issuer, server string, opts service.Options) *opsService {
	t.Helper()
	return startOpsWithTail(t, is, server, "", opts)
}

// startOpsWithTail starts the service with tail appended to the configuration file.
func startOpsWithTail(t *testing.T, is *issuertest.Issuer, server, tail string, opts service.Options) *opsService {
	t.Helper()
	state := t.TempDir()
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	cfgYAML := fmt.Sprintf(`apiVersion: oidc-authenticator.io/v1alpha1
kind: AuthenticatorConfiguration
server:
  address: %s
  metricsAddress: %s
  stateDir: %s
%sjwt:
- issuer:
    url: %s
    audiences: [kubernetes]
    certificateAuthority: |
%s
  claimMappings:
    username: {claim: email, prefix: ""}
%s`, addr, metricsAddr, state, server, is.URL, indent(is.CAPEM, "      "), tail)
	cfg, err := config.Parse([]byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	svc, err := service.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &opsService{url: "https://" + addr, metricsURL: "http://" + metricsAddr, files: pki.Files{Dir: state}, logs: logs, issuer: is, done: make(chan error, 1)}
	go func() { o.done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-o.done
		if t.Failed() {
			t.Logf("webhook log:\n%s", logs.String())
		}
	})
	return o
}

// client trusts the state directory's CA and presents kube-apiserver's client certificate
// when withCert.
func (o *opsService) client(t *testing.T, withCert bool) *http.Client {
	t.Helper()
	pool, err := pki.LoadCertPool(o.files.CACert())
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: pool}
	if withCert {
		cert, err := tls.LoadX509KeyPair(o.files.ClientCert(), o.files.ClientKey())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func (o *opsService) getMetrics(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(o.metricsURL + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady waits for /readyz on the metrics listener, which passes once the TokenReview
// listener is open.
func (o *opsService) waitReady(t *testing.T) {
	t.Helper()
	waitFor(t, 20*time.Second, "/readyz on the metrics listener", func() bool {
		code, _ := o.getMetrics(t, "/readyz")
		return code == http.StatusOK
	})
}

func (o *opsService) review(t *testing.T, c *http.Client, token string) int {
	t.Helper()
	resp, err := c.Post(o.url+"/authenticate", "application/json",
		strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"`+token+`"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Rule: without clientCAFile, the server still requires kube-apiserver's client certificate,
// signed by the state directory's CA (which init always writes).
func TestClientCertificateRequiredByDefault(t *testing.T) {
	o := startOps(t, "", service.Options{})
	o.waitReady(t)
	if code := o.review(t, o.client(t, false), o.issuer.Token(t, nil)); code != http.StatusUnauthorized {
		t.Fatalf("a review without a client certificate answered %d, want 401", code)
	}
	if code := o.review(t, o.client(t, true), o.issuer.Token(t, nil)); code != http.StatusOK {
		t.Fatalf("a review with kube-apiserver's client certificate answered %d", code)
	}
	if !strings.Contains(o.logs.String(), "TokenReviews require a client certificate") {
		t.Errorf("the start does not say that a client certificate is required:\n%s", o.logs.String())
	}
}

// Rule: running without a client certificate is an explicit choice, warned about at start.
func TestClientAuthNoneIsWarned(t *testing.T) {
	o := startOps(t, "  clientAuth: none\n", service.Options{})
	o.waitReady(t)
	if code := o.review(t, o.client(t, false), o.issuer.Token(t, nil)); code != http.StatusOK {
		t.Fatalf("clientAuth none: a review without a client certificate answered %d", code)
	}
	if !regexp.MustCompile(`level=WARN msg="server.clientAuth is none`).MatchString(o.logs.String()) {
		t.Errorf("no warning about clientAuth none:\n%s", o.logs.String())
	}
}

// Rule: when the client CA is required but missing (own serving certificate, no ca.crt in
// the state directory, no clientCAFile), the server refuses to start and says what to do.
func TestClientAuthRequiredWithoutCARefusesToStart(t *testing.T) {
	own := pki.Files{Dir: t.TempDir()}
	if _, err := pki.Ensure(own, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	o := startOps(t, "  certFile: "+own.ServerCert()+"\n  keyFile: "+own.ServerKey()+"\n", service.Options{})
	select {
	case err := <-o.done:
		o.done <- err // for the cleanup
		if err == nil || !strings.Contains(err.Error(), "clientAuth") || !strings.Contains(err.Error(), "init") {
			t.Fatalf("err = %v; want it to name server.clientAuth and init", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server started without a client CA")
	}
}

// Rule: the metrics listener serves build_info, the certificates' expiry (the serving one as
// served, so a renewal shows), counters at 0 from the start, and the readiness detail with
// the TokenReview listener's line.
func TestMetricsListener(t *testing.T) {
	o := startOps(t, "", service.Options{Version: "v9.9.9", Revision: "abc123"})
	o.waitReady(t)
	_, body := o.getMetrics(t, "/metrics")
	serving, err := pki.ReadCertificate(o.files.ServerCert())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ReadCertificate(o.files.CACert())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`oidc_authenticator_build_info{goversion="go`,
		`revision="abc123",version="v9.9.9"} 1`,
		`oidc_authenticator_certificate_expiry_timestamp_seconds{cert="serving"} ` + expSeconds(serving.NotAfter),
		`oidc_authenticator_certificate_expiry_timestamp_seconds{cert="client_ca"} ` + expSeconds(ca.NotAfter),
		`oidc_authenticator_certificate_expiry_timestamp_seconds{cert="client"} `,
		`oidc_authenticator_tokenreview_requests_total{reason="bad_signature",result="denied"} 0`,
		`oidc_authenticator_tokenreview_requests_total{reason="issuer_not_ready",result="undecided"} 0`,
		`oidc_authenticator_token_cache_requests_total{result="hit"} 0`,
		`oidc_authenticator_jwks_fetches_total{issuer="` + o.issuer.URL + `",result="failure"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the metrics lack %s", want)
		}
	}
	if code, readyz := o.getMetrics(t, "/readyz?verbose"); code != 200 || !strings.Contains(readyz, "[+]listener ") {
		t.Errorf("readyz?verbose %d:\n%s", code, readyz)
	}

	// Renew the serving certificate: once served, the metric shows the new expiry. A full
	// jitter makes its expiry differ from the first one's, whose jitter is less.
	c := o.client(t, true)
	if _, err := pki.Ensure(o.files, pki.Options{RenewWithin: 10 * 365 * 24 * time.Hour, Jitter: func() time.Duration { return pki.LeafJitter }}); err != nil {
		t.Fatal(err)
	}
	renewed, err := pki.ReadCertificate(o.files.ServerCert())
	if err != nil {
		t.Fatal(err)
	}
	if renewed.NotAfter.Equal(serving.NotAfter) {
		t.Fatal("the serving certificate was not renewed")
	}
	want := `{cert="serving"} ` + expSeconds(renewed.NotAfter)
	waitFor(t, 20*time.Second, "the renewed serving certificate in the metrics", func() bool {
		o.review(t, c, "x") // a handshake: the reloader looks at the files
		_, body := o.getMetrics(t, "/metrics")
		return strings.Contains(body, want)
	})
}

// expSeconds is a Unix time as the Prometheus text format prints it: 1.234567891e+09.
func expSeconds(t time.Time) string {
	return strconv.FormatFloat(float64(t.Unix()), 'e', -1, 64)
}

// Rule: with a listen wait, the TokenReview listener stays closed while no issuer can verify
// tokens (so that a successor takes no connections it would answer "undecided"), the metrics
// listener says so and fails /readyz, and the listener opens once the issuer is ready.
func TestListenerOpensOnceReady(t *testing.T) {
	is := issuertest.New(t)
	is.SetDown(true)
	o := startOpsWith(t, is, "", service.Options{ListenWait: time.Hour})
	waitFor(t, 20*time.Second, "the metrics listener", func() bool {
		code, body := o.getMetrics(t, "/readyz?verbose")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "[-]listener ") && strings.Contains(body, "not open yet")
	})
	if _, err := net.Dial("tcp", strings.TrimPrefix(o.url, "https://")); err == nil {
		t.Fatal("the TokenReview listener is open before any issuer is ready")
	}
	is.SetDown(false)
	o.waitReady(t)
	if code := o.review(t, o.client(t, true), is.Token(t, nil)); code != http.StatusOK {
		t.Fatalf("after the issuer came up: %d", code)
	}
}

// Rule: /readyz?verbose says which mapping version is in force and why the newest was refused,
// but not the entries it maps: no email, subject or user name of the refused version.
func TestReadyzShowsNoMappingEntries(t *testing.T) {
	dir := t.TempDir()
	mountConfigMap(t, dir, map[string]string{
		"mapUsers": "- email: alice@example.com\n  username: alice\n- email: alice@example.com\n  username: mallory\n",
	})
	o2 := startOpsWithTail(t, issuertest.New(t), "", "mapping: {file: "+dir+"}\n", service.Options{})
	var body string
	waitFor(t, 20*time.Second, "the refusal in /readyz?verbose", func() bool {
		code, b := o2.getMetrics(t, "/readyz?verbose")
		body = b
		return code != 0 && strings.Contains(body, "version ") && strings.Contains(body, " refused at ")
	})
	if !strings.Contains(body, "mapUsers[1].email") {
		t.Errorf("the refusal does not name the field:\n%s", body)
	}
	for _, secret := range []string{"alice@example.com", "mallory"} {
		if strings.Contains(body, secret) {
			t.Errorf("/readyz?verbose shows the mapping entry %q:\n%s", secret, body)
		}
	}
}

// Rule: --apiserver-host sends the mapping's Kubernetes API requests to that host, with the
// kubeconfig's credentials, instead of the kubeconfig's server (the DaemonSet reaches its
// node's kube-apiserver so, without the kubernetes Service or DNS); a host without a port is
// refused at start.
func TestAPIServerHostOverride(t *testing.T) {
	asked := make(chan string, 16)
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- r.Header.Get("Authorization") + " " + r.URL.Path:
		default:
		}
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer api.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://kubernetes.default.svc:443", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: the-token}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	is := issuertest.New(t)
	cfg := is.Config()
	conf, err := config.Parse([]byte(fmt.Sprintf(`apiVersion: oidc-authenticator.io/v1alpha1
kind: AuthenticatorConfiguration
jwt:
- issuer: {url: %q, audiences: [kubernetes]}
  claimMappings: {username: {claim: email, prefix: ""}}
mapping: {configMap: kube-system/oidc-auth}
`, cfg.Issuer.URL)))
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(api.URL, "https://")
	svc, err := service.New(conf, service.Options{Kubeconfig: kubeconfig, APIServerHost: host})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, wait := svc.StartMapping(ctx)
	defer func() { cancel(); wait() }()
	select {
	case got := <-asked:
		if !strings.HasPrefix(got, "Bearer the-token /api/v1/namespaces/kube-system/configmaps") {
			t.Fatalf("the API at --apiserver-host was asked %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no request reached --apiserver-host")
	}
	if _, err := service.New(conf, service.Options{Kubeconfig: kubeconfig, APIServerHost: "10.0.0.1"}); err == nil || !strings.Contains(err.Error(), "--apiserver-host") {
		t.Fatalf("a host without a port: err = %v", err)
	}
}
