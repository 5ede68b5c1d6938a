package issuer_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

// clock is a settable time source, so that refresh intervals pass without waiting.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// An issuer whose discovery and JWKS endpoints go down (see also TestIssuerOutage): tokens signed by keys already fetched
// keep verifying; a new key is undecided (never a cached denial); fetches back off while the
// issuer fails; /readyz?verbose says so; recovery picks the new key up.
func TestIssuerOutageBacksOffAndSaysSo(t *testing.T) {
	ti := issuertest.New(t)
	c := &clock{now: time.Now()}
	is := start(t, ti.Config(), issuer.Options{KeyRefreshInterval: 10 * time.Second, Now: c.Now})

	ti.SetDown(true)
	ti.AddKey(t, "key-2", "RS256")
	rotated := ti.Sign(t, "key-2", "RS256", ti.Claims(nil))

	if _, err := verify(t, is, ti.Token(t, nil)); err != nil {
		t.Fatalf("a token signed by a key fetched before the outage: %v", err)
	}
	steps := []struct {
		after      time.Duration
		wantReason authn.Reason
		failures   string // in the status message; "" means healthy
	}{
		// The first unknown key after the interval: a fetch, which fails.
		{11 * time.Second, authn.ReasonKeysUnavailable, "failed 1 times"},
		// 11 s later: within the doubled interval (20 s), so no fetch.
		{11 * time.Second, authn.ReasonUnknownKey, "failed 1 times"},
		// 21 s after the failed fetch: the next attempt, which fails again; now 40 s.
		{10 * time.Second, authn.ReasonKeysUnavailable, "failed 2 times"},
		{30 * time.Second, authn.ReasonUnknownKey, "failed 2 times"},
	}
	for n, s := range steps {
		c.advance(s.after)
		_, err := verify(t, is, rotated)
		var d *authn.Denial
		if err == nil || reasonOf(err) != s.wantReason || !errors.As(err, &d) || !d.Retryable {
			t.Fatalf("step %d: want an undecided %q, got %v", n, s.wantReason, err)
		}
		st := is.Status()
		if !st.Ready || !strings.Contains(st.Message, "refreshing them failed") || !strings.Contains(st.Message, s.failures) {
			t.Fatalf("step %d: status %+v; want ready, saying the keys %s", n, st, s.failures)
		}
		if _, err := verify(t, is, ti.Token(t, nil)); err != nil {
			t.Fatalf("step %d: a known key during the outage: %v", n, err)
		}
	}

	ti.SetDown(false)
	c.advance(11 * time.Second) // 41 s since the last failed fetch
	if _, err := verify(t, is, rotated); err != nil {
		t.Fatalf("after recovery the new key must verify: %v", err)
	}
	if st := is.Status(); !st.Ready || strings.Contains(st.Message, "failed") {
		t.Fatalf("after recovery: %+v", st)
	}
}

// Under a sustained flood of unknown key IDs the key set is fetched at most once per
// interval, also across intervals: the fetch scheduled for the end of one interval opens the
// next, rather than letting a token arriving just after it fetch again at once.
func TestUnknownKeyFloodAcrossIntervals(t *testing.T) {
	ti := issuertest.New(t)
	const interval = 200 * time.Millisecond
	is := start(t, ti.Config(), issuer.Options{KeyRefreshInterval: interval})
	before := ti.JWKSFetches()
	began := time.Now()
	for n := 0; time.Since(began) < 5*interval; n++ {
		_, _ = verify(t, is, forgeKid(t, ti.Token(t, nil), fmt.Sprintf("forged-%d", n)))
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(began)
	if got, most := ti.JWKSFetches()-before, int(elapsed/interval)+1; got > most {
		t.Fatalf("%d JWKS fetches in %s; want at most one per %s (%d)", got, elapsed.Round(time.Millisecond), interval, most)
	}
}
