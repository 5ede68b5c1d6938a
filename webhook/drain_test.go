package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// gateAuth holds every review in Authenticate until release is closed, so that a test can
// have requests in flight when the server is told to stop.
type gateAuth struct {
	entered atomic.Int32
	release chan struct{}
}

func (g *gateAuth) Authenticate(ctx context.Context, _ string) (authn.Result, error) {
	g.entered.Add(1)
	select {
	case <-g.release:
	case <-ctx.Done():
		return authn.Result{}, ctx.Err()
	}
	return authn.Result{User: authn.User{Name: "alice"}}, nil
}

// SIGTERM under load: every review the server has started to answer is answered in full,
// and Serve returns cleanly once they are.
func TestShutdownDrainsInFlightReviews(t *testing.T) {
	const inFlight = 32
	g := &gateAuth{release: make(chan struct{})}
	f := serveWith(t, true, g)

	var (
		wg       sync.WaitGroup
		answered atomic.Int32
		failures = make(chan string, inFlight)
	)
	for range inFlight {
		wg.Go(func() {
			resp, err := f.client.Post(f.url+"/authenticate", "application/json", strings.NewReader(review("v1", "any")))
			if err != nil {
				failures <- err.Error()
				return
			}
			defer resp.Body.Close()
			var out struct {
				Status struct{ Authenticated bool } `json:"status"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || !out.Status.Authenticated {
				failures <- fmt.Sprintf("answer %d %+v %v", resp.StatusCode, out, err)
				return
			}
			answered.Add(1)
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.entered.Load() < inFlight {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d reviews reached the authenticator", g.entered.Load(), inFlight)
		}
		time.Sleep(5 * time.Millisecond)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- f.shutdown() }()
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) while %d reviews were still in flight", err, inFlight)
	case <-time.After(200 * time.Millisecond):
	}
	close(g.release)
	wg.Wait()
	close(failures)
	for msg := range failures {
		t.Error(msg)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if got := answered.Load(); got != inFlight {
		t.Fatalf("%d of %d in-flight reviews answered", got, inFlight)
	}
	// Once drained the port is closed: a new review fails at once instead of hanging.
	if _, err := f.anon.Post(f.url+"/authenticate", "application/json", nil); err == nil {
		t.Fatal("the server still accepts connections after shutdown")
	}
}
