//go:build e2enode

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// reviewLoad counts the logins sent through kube-apiserver while a rollout runs.
type reviewLoad struct {
	sent, ok atomic.Int64
	mu       sync.Mutex
	failures []string
}

// withLogins runs f while two workers log alice in through kube-apiserver without pause, each
// with a fresh id_token from Dex (so that kube-apiserver's cache answers none of them and every
// one is a TokenReview), and fails the test if any login failed: a surge rollout of the
// DaemonSet must not cost one.
func (n *node) withLogins(what string, f func()) {
	n.t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(n.cp.api.caFile)
	if err != nil {
		n.t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var (
		load reviewLoad
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				load.login(n, client)
			}
		})
	}
	f()
	close(stop)
	wg.Wait()
	n.t.Logf("%s: %d logins through kube-apiserver, %d answered with alice's identity, %d failed", what, load.sent.Load(), load.ok.Load(), len(load.failures))
	for _, msg := range load.failures {
		n.t.Errorf("%s: a login failed: %s", what, msg)
	}
	if load.ok.Load() == 0 {
		n.t.Errorf("%s: no login went through during the rollout", what)
	}
}

// login sends one SelfSubjectReview with a fresh token of alice's.
func (l *reviewLoad) login(n *node, c *http.Client) {
	tok, err := n.dex.PasswordGrant(context.Background(), "alice@example.com", "alice-password")
	if err != nil {
		return // Dex, not the webhook: not counted
	}
	l.sent.Add(1)
	req, _ := http.NewRequest(http.MethodPost, n.cp.api.url+"/apis/authentication.k8s.io/v1/selfsubjectreviews",
		strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
	req.Header.Set("Authorization", "Bearer "+tok.IDToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		l.fail(fmt.Sprintf("%s: %v", time.Now().Format(time.RFC3339Nano), err))
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), `"username":"alice@example.com"`) {
		l.fail(fmt.Sprintf("%s: %s: %s", time.Now().Format(time.RFC3339Nano), resp.Status, body))
		return
	}
	l.ok.Add(1)
}

func (l *reviewLoad) fail(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, msg)
}
