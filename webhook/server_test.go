package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/metrics"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/pki"
)

// fakeAuth accepts "good" (and "cached", from its cache, and "many", a user in 25 groups),
// denies "bad" cleanly, and cannot decide "later".
type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, raw string) (authn.Result, error) {
	switch raw {
	case "good":
		return authn.Result{User: authn.User{Name: "alice", UID: "u1", Groups: []string{"g"}, Extra: map[string][]string{"k.io/x": {"v"}}}}, nil
	case "cached":
		return authn.Result{User: authn.User{Name: "alice"}, Cached: true}, nil
	case "many":
		groups := make([]string, 25)
		for i := range groups {
			groups[i] = fmt.Sprintf("g%d", i)
		}
		return authn.Result{User: authn.User{Name: "bob", Groups: groups}}, nil
	case "later":
		return authn.Result{}, authn.Undecided(authn.ReasonIssuerNotReady, io.EOF)
	case "busy":
		return authn.Result{}, authn.Undecided(authn.ReasonOverloaded, io.EOF)
	case "panic":
		panic("boom")
	default:
		return authn.Result{}, authn.Deny(authn.ReasonBadSignature, "nope")
	}
}

type fixture struct {
	url    string
	client *http.Client // presents the kube-apiserver client certificate
	anon   *http.Client // trusts the server, presents no certificate
	logs   *bytes.Buffer
	// shutdown does what SIGTERM does: stops accepting, drains, and returns Serve's error.
	shutdown func() error
	srv      *webhook.Server
}

func serve(t *testing.T, requireClientCert bool) *fixture {
	t.Helper()
	return serveWith(t, requireClientCert, fakeAuth{})
}

func serveWith(t *testing.T, requireClientCert bool, auth webhook.Authenticator) *fixture {
	t.Helper()
	return serveWithLogger(t, requireClientCert, auth, nil)
}

// serveWithLogger is serveWith logging to log; nil logs text into the fixture's logs.
func serveWithLogger(t *testing.T, requireClientCert bool, auth webhook.Authenticator, log *slog.Logger) *fixture {
	t.Helper()
	files := pki.Files{Dir: t.TempDir()}
	if _, err := pki.Ensure(files, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	reloader, err := pki.NewCertReloader(files.ServerCert(), files.ServerKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.LoadCertPool(files.CACert())
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{GetCertificate: reloader.GetCertificate}
	if requireClientCert {
		tlsCfg.ClientCAs = pool
	}
	logs := &bytes.Buffer{}
	if log == nil {
		log = slogTo(logs)
	}
	srv, err := webhook.New(webhook.Options{
		Authenticator: auth, Metrics: metrics.New(), TLS: tlsCfg, RequireClientCert: requireClientCert,
		Logger: log,
		Readiness: func() []webhook.CheckResult {
			return []webhook.CheckResult{{Name: "issuer https://a", OK: true, Detail: "discovered"}, {Name: "issuer https://b", OK: false, Detail: "down", Informational: true}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	shutdown := sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := shutdown(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	clientCert, err := tls.LoadX509KeyPair(files.ClientCert(), files.ClientKey())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	ca, _ := os.ReadFile(files.CACert())
	roots.AppendCertsFromPEM(ca)
	mk := func(certs []tls.Certificate) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
	}
	return &fixture{url: "https://" + ln.Addr().String(), client: mk([]tls.Certificate{clientCert}), anon: mk(nil), logs: logs, shutdown: shutdown, srv: srv}
}

func (f *fixture) post(t *testing.T, c *http.Client, body string) (int, map[string]any) {
	t.Helper()
	resp, err := c.Post(f.url+"/authenticate", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("response %d is not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

func review(version, token string) string {
	return `{"apiVersion":"authentication.k8s.io/` + version + `","kind":"TokenReview","spec":{"token":"` + token + `","audiences":["https://kubernetes.default.svc"]}}`
}

func TestTokenReviewAnswers(t *testing.T) {
	f := serve(t, true)
	tests := []struct {
		name, version, token string
		authenticated        bool
		wantError            bool
	}{
		{"v1 accepted", "v1", "good", true, false},
		{"v1beta1 accepted", "v1beta1", "good", true, false},
		{"v1 clean deny: empty status.error so the apiserver caches it", "v1", "bad", false, false},
		{"v1beta1 clean deny", "v1beta1", "bad", false, false},
		{"undecided: status.error set so the apiserver does not cache it", "v1", "later", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := f.post(t, f.client, review(tc.version, tc.token))
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if out["apiVersion"] != "authentication.k8s.io/"+tc.version || out["kind"] != "TokenReview" {
				t.Fatalf("answered in %v %v", out["apiVersion"], out["kind"])
			}
			if _, echoed := out["spec"].(map[string]any)["token"]; echoed {
				t.Fatal("the token must never be echoed back")
			}
			st := out["status"].(map[string]any)
			if got, _ := st["authenticated"].(bool); got != tc.authenticated {
				t.Fatalf("authenticated %v", st["authenticated"])
			}
			if errMsg, _ := st["error"].(string); (errMsg != "") != tc.wantError {
				t.Fatalf("status.error %q", errMsg)
			}
			if tc.authenticated {
				u := st["user"].(map[string]any)
				if u["username"] != "alice" || u["uid"] != "u1" || u["groups"].([]any)[0] != "g" || u["extra"].(map[string]any)["k.io/x"].([]any)[0] != "v" {
					t.Fatalf("user %v", u)
				}
			}
		})
	}
	if strings.Contains(f.logs.String(), "good") {
		t.Fatal("a token reached the log")
	}
}

// Every decision is logged at info, but a token allowed again from the cache only at debug:
// its verification was logged when it was made.
func TestDecisionLog(t *testing.T) {
	f := serve(t, true)
	for _, token := range []string{"good", "cached", "bad"} {
		if code, _ := f.post(t, f.client, review("v1", token)); code != http.StatusOK {
			t.Fatalf("%s: status %d", token, code)
		}
	}
	if err := f.shutdown(); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	if n := strings.Count(logs, "result=allowed"); n != 1 {
		t.Fatalf("%d allowed decisions logged at info, want 1 (the cache hit is debug):\n%s", n, logs)
	}
	if !strings.Contains(logs, `username=alice groups=[g] cached=false`) {
		t.Fatalf("the allowed user is not logged with its groups:\n%s", logs)
	}
	if !strings.Contains(logs, "result=denied reason=bad_signature") {
		t.Fatalf("the denial is not logged:\n%s", logs)
	}
}

// A user in many groups is logged with the first 20 and their number: one line per login stays
// short whatever the IdP sends, and the answer itself carries every group.
func TestDecisionLogBoundsGroups(t *testing.T) {
	f := serve(t, true)
	code, out := f.post(t, f.client, review("v1", "many"))
	if user, _ := out["status"].(map[string]any)["user"].(map[string]any); code != http.StatusOK || len(user["groups"].([]any)) != 25 {
		t.Fatalf("status %d, want all 25 groups in the answer: %v", code, out)
	}
	if err := f.shutdown(); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `groups="[g0 g1 g2 g3 g4 g5 g6 g7 g8 g9 g10 g11 g12 g13 g14 g15 g16 g17 g18 g19]" groups_total=25 cached=false`) {
		t.Fatalf("want the first 20 groups and groups_total=25 logged:\n%s", logs)
	}
}

// A flood of refused tokens cannot flood the log: beyond a rate, refusals are counted, and the
// next line logged says how many were left out. Every refusal is either logged or counted.
func TestRefusalFloodIsCountedNotLogged(t *testing.T) {
	f := serve(t, true)
	const flood = 200
	for range flood {
		f.post(t, f.client, review("v1", "bad"))
	}
	time.Sleep(300 * time.Millisecond) // the rate allows a line again
	f.post(t, f.client, review("v1", "bad"))
	if err := f.shutdown(); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	lines := strings.Count(logs, "result=denied reason=bad_signature")
	suppressed := 0
	for _, m := range regexp.MustCompile(`suppressed=(\d+)`).FindAllStringSubmatch(logs, -1) {
		n, _ := strconv.Atoi(m[1])
		suppressed += n
	}
	if lines >= flood {
		t.Fatalf("%d refusals logged one line each", lines)
	}
	if lines+suppressed != flood+1 {
		t.Fatalf("%d lines logged and %d refusals counted as suppressed; want %d in all", lines, suppressed, flood+1)
	}
}

func TestMalformedRequests(t *testing.T) {
	f := serve(t, true)
	tests := []struct {
		name, body string
		wantCode   int
		wantMsg    string
	}{
		{"not JSON", "{", 400, "not valid JSON"},
		{"wrong type", `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":5}}`, 400, "not a TokenReview"},
		{"wrong apiVersion", `{"apiVersion":"v1","kind":"TokenReview","spec":{"token":"x"}}`, 400, "apiVersion"},
		{"wrong kind", `{"apiVersion":"authentication.k8s.io/v1","kind":"Pod","spec":{"token":"x"}}`, 400, "kind"},
		{"empty token", review("v1", ""), 400, "spec.token is empty"},
		{"body over 1 MiB", review("v1", strings.Repeat("a", webhook.MaxRequestBytes)), 413, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := f.post(t, f.client, tc.body)
			if code != tc.wantCode || !strings.Contains(out["message"].(string), tc.wantMsg) {
				t.Fatalf("got %d %v; want %d with %q", code, out, tc.wantCode, tc.wantMsg)
			}
		})
	}
	resp, err := f.client.Get(f.url + "/authenticate")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /authenticate: %d, want 405", resp.StatusCode)
	}
	// A panic in a handler is a 500 (which the apiserver retries), never a crash.
	code, _ := f.post(t, f.client, review("v1", "panic"))
	if code != http.StatusInternalServerError {
		t.Fatalf("panic: %d", code)
	}
	if code, _ := f.post(t, f.client, review("v1", "good")); code != 200 {
		t.Fatal("the server must keep serving after a panic")
	}
}

// Too many verifications at once: 429 with Retry-After, which kube-apiserver's webhook client
// retries with backoff (and never caches).
func TestOverloadIs429(t *testing.T) {
	f := serve(t, true)
	resp, err := f.client.Post(f.url+"/authenticate", "application/json", strings.NewReader(review("v1", "busy")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "maxInFlightVerifications") {
		t.Fatalf("got %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
}

func TestClientCertificateRequired(t *testing.T) {
	f := serve(t, true)
	code, out := f.post(t, f.anon, review("v1", "good"))
	if code != http.StatusUnauthorized || !strings.Contains(out["message"].(string), "client certificate") {
		t.Fatalf("without a client cert: %d %v", code, out)
	}
	// Probes come without client certificates and must still work.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := f.anon.Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	// Without clientCAFile, anyone who reaches the port may ask.
	open := serve(t, false)
	if code, _ := open.post(t, open.anon, review("v1", "good")); code != 200 {
		t.Fatalf("no client CA configured: %d", code)
	}
}

func TestReadyzVerboseAndMetrics(t *testing.T) {
	f := serve(t, true)
	f.post(t, f.client, review("v1", "bad"))
	// Without a client certificate the HTTPS port says only ready or not.
	anon, err := f.anon.Get(f.url + "/readyz?verbose")
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := io.ReadAll(anon.Body)
	anon.Body.Close()
	if anon.StatusCode != 200 || strings.Contains(string(ab), "issuer") {
		t.Fatalf("readyz?verbose without a client certificate %d shows detail:\n%s", anon.StatusCode, ab)
	}
	resp, err := f.client.Get(f.url + "/readyz?verbose")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "[+]issuer https://a ok: discovered\n[-]issuer https://b failed: down\nreadyz check passed\n"
	if resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("readyz %d:\n%s\nwant:\n%s", resp.StatusCode, b, want)
	}
	resp, err = f.client.Get(f.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `oidc_authenticator_tokenreview_requests_total{reason="bad_signature",result="denied"} 1`) {
		t.Fatalf("metrics lack the denial:\n%s", b)
	}
}
