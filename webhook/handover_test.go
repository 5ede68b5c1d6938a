package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/pki"
)

// namedAuth accepts every token as its own user, and counts them.
type namedAuth struct {
	name     string
	answered atomic.Int64
}

func (a *namedAuth) Authenticate(context.Context, string) (authn.Result, error) {
	a.answered.Add(1)
	return authn.Result{User: authn.User{Name: a.name}}, nil
}

// Rule: two instances serve one address at once (SO_REUSEPORT), and when the old one is told
// to stop after the new one listens, a client sending reviews without pause over keep-alive
// connections, with kube-apiserver's retry of a reset connection, gets every review answered:
// none fails, the new instance answers the reviews after the hand-over, and the old one stops.
func TestHandoverToSuccessorLosesNoReview(t *testing.T) {
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
	var logs syncBuffer
	start := func(ln net.Listener, auth *namedAuth, delay time.Duration) (stop func() error) {
		srv, err := webhook.New(webhook.Options{
			Authenticator: auth, TLS: &tls.Config{GetCertificate: reloader.GetCertificate, ClientCAs: pool},
			RequireClientCert: true, Logger: slogTo(&logs),
			ShutdownDelay: delay,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, ln) }()
		stop = sync.OnceValue(func() error { cancel(); return <-done })
		t.Cleanup(func() { _ = stop() })
		return stop
	}
	oldLn, err := webhook.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := oldLn.Addr().String()
	old, successor := &namedAuth{name: "old"}, &namedAuth{name: "new"}
	// The old instance's wait is long enough never to end here: the successor is found first.
	stopOld := start(oldLn, old, time.Minute)

	cert, err := tls.LoadX509KeyPair(files.ClientCert(), files.ClientKey())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	ca, _ := os.ReadFile(files.CACert())
	roots.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}, MaxIdleConnsPerHost: 8}}

	var (
		sent, resets atomic.Int64
		failures     = make(chan string, 100)
		stopLoad     = make(chan struct{})
		wg           sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				sent.Add(1)
				if msg := reviewWithRetry(client, addr, &resets); msg != "" {
					select {
					case failures <- msg:
					default:
					}
				}
			}
		})
	}
	waitUntil(t, "the old instance answers", func() bool { return old.answered.Load() >= 200 })

	// The rollout: the new instance listens on the same address, then the old one gets SIGTERM.
	newLn, err := webhook.Listen(context.Background(), addr)
	if err != nil {
		t.Fatalf("a second instance cannot listen on %s: %v", addr, err)
	}
	start(newLn, successor, 0)
	if err := stopOld(); err != nil {
		t.Fatalf("the old instance: %v", err)
	}
	oldTotal := old.answered.Load()
	waitUntil(t, "the new instance answers after the hand-over", func() bool { return successor.answered.Load() >= 500 })
	close(stopLoad)
	wg.Wait()
	close(failures)
	for msg := range failures {
		t.Error(msg)
	}
	if got := old.answered.Load(); got != oldTotal {
		t.Errorf("the old instance answered %d reviews after it stopped", got-oldTotal)
	}
	if !strings.Contains(logs.String(), "another instance listens on the address") {
		t.Errorf("the old instance did not see its successor:\n%s", logs.String())
	}
	t.Logf("%d reviews sent: %d answered by the old instance, %d by the new one; %d reset connections retried",
		sent.Load(), oldTotal, successor.answered.Load(), resets.Load())
}

// reviewWithRetry sends one review as kube-apiserver does: a reset connection is retried (up
// to 5 times). It returns "" when the review was allowed, else what went wrong.
func reviewWithRetry(c *http.Client, addr string, resets *atomic.Int64) string {
	var err error
	for range 5 {
		var resp *http.Response
		resp, err = c.Post("https://"+addr+"/authenticate", "application/json", strings.NewReader(review("v1", "any")))
		if err != nil {
			if errors.Is(err, syscall.ECONNRESET) {
				resets.Add(1)
				continue
			}
			return err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			Status struct{ Authenticated bool } `json:"status"`
		}
		if json.Unmarshal(body, &out) != nil || resp.StatusCode != http.StatusOK || !out.Status.Authenticated {
			return fmt.Sprintf("answer %d: %s", resp.StatusCode, body)
		}
		return ""
	}
	return "still reset after 5 tries: " + err.Error()
}

// waitUntil polls cond, failing the test if it never holds (the bound is only a guard
// against a hang, not a timing requirement).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a log sink safe for the servers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Rule: OtherListener's table reader counts the listening sockets on one address, IPv4 and
// IPv6 alike, and nothing else.
func TestCountListeners(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:5372 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65532        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:5372 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65532        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:5372 0100007F:C350 01 00000000:00000000 00:00000000 00000000 65532        0 3 1 0000000000000000 100 0 0 10 0
   3: 0100007F:5373 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65532        0 4 1 0000000000000000 100 0 0 10 0
`
	n, err := webhook.CountListeners(strings.NewReader(table), netip.MustParseAddrPort("127.0.0.1:21362"))
	if err != nil || n != 2 {
		t.Fatalf("got %d, %v; want the 2 listeners on 127.0.0.1:21362", n, err)
	}
	const table6 = `  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:5372 00000000000000000000000000000000:0000 0A
`
	if n, err := webhook.CountListeners(strings.NewReader(table6), netip.MustParseAddrPort("[::1]:21362")); err != nil || n != 1 {
		t.Fatalf("IPv6: got %d, %v; want 1", n, err)
	}
}

// Rule: the plain-HTTP probes listener serves the metrics and the readiness detail, and once
// the server is told to stop, /readyz fails there.
func TestProbesListener(t *testing.T) {
	f := serve(t, true)
	probes := httptest.NewServer(f.srv.ProbesHandler())
	defer probes.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(probes.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz?verbose"); code != 200 || !strings.Contains(body, "[+]issuer https://a ok: discovered") {
		t.Fatalf("readyz?verbose %d:\n%s", code, body)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok" {
		t.Fatalf("healthz %d: %s", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `oidc_authenticator_token_cache_requests_total{result="miss"} 0`) {
		t.Fatalf("metrics %d lack the pre-initialized cache counter:\n%s", code, body)
	}
	if err := f.shutdown(); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/readyz?verbose"); code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]shutdown failed: terminating") {
		t.Fatalf("readyz after SIGTERM %d:\n%s", code, body)
	}
}

// Rule: malformed TokenReviews are logged at the refusals' rate, the rest counted as
// suppressed, so that garbage sent to the port cannot flood the log.
func TestMalformedReviewLogIsRateLimited(t *testing.T) {
	f := serve(t, true)
	const flood = 200
	for range flood {
		resp, err := f.client.Post(f.url+"/authenticate", "application/json", strings.NewReader("{not json"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("garbage answered %d", resp.StatusCode)
		}
	}
	if err := f.shutdown(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(f.logs.String(), "malformed TokenReview")
	if lines == 0 || lines >= flood {
		t.Fatalf("%d of %d malformed reviews logged; want some, and fewer than all", lines, flood)
	}
}
