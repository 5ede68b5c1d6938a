package issuer_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

// settle waits until the key fetch that a step of the fake clock set off, if any, is made: it
// runs in a goroutine of its own. A fetch still scheduled for later is not waited for.
func settle(t *testing.T, is *issuer.Issuer, c *testingclock.FakeClock) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); is.FetchScheduled() && !c.HasWaiters(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the scheduled key fetch was never made")
		}
	}
}

// An issuer whose discovery and JWKS endpoints go down (see also TestIssuerOutage): tokens signed by keys already fetched
// keep verifying; a new key is undecided (never a cached denial); fetches back off while the
// issuer fails; /readyz?verbose says so; recovery picks the new key up.
func TestIssuerOutageBacksOffAndSaysSo(t *testing.T) {
	ti := issuertest.New(t)
	c := testingclock.NewFakeClock(time.Now())
	is := start(t, ti.Config(), issuer.Options{KeyRefreshInterval: 10 * time.Second, Clock: c})

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
		// 11 s later: within the doubled interval (20 s), so no fetch now; one is scheduled
		// for its end.
		{11 * time.Second, authn.ReasonUnknownKey, "failed 1 times"},
		// 21 s after the failed fetch: the scheduled attempt was made and failed again; the
		// interval is now 40 s, so the token waits for the next one.
		{10 * time.Second, authn.ReasonUnknownKey, "failed 2 times"},
		{30 * time.Second, authn.ReasonUnknownKey, "failed 2 times"},
	}
	for n, s := range steps {
		c.Step(s.after)
		settle(t, is, c)
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
	c.Step(11 * time.Second) // the fetch scheduled 40 s after the last failed one
	settle(t, is, c)
	if _, err := verify(t, is, rotated); err != nil {
		t.Fatalf("after recovery the new key must verify: %v", err)
	}
	if st := is.Status(); !st.Ready || strings.Contains(st.Message, "failed") {
		t.Fatalf("after recovery: %+v", st)
	}
}

// Under a sustained flood of unknown key IDs the key set is fetched at most once per
// interval, also across intervals: the fetch scheduled for the end of one interval opens the
// next, and a token arriving while it is pending waits for it rather than fetching beside it
// (which once made two fetches in one interval when the scheduled one ran late).
func TestUnknownKeyFloodAcrossIntervals(t *testing.T) {
	ti := issuertest.New(t)
	const interval = 10 * time.Second
	c := testingclock.NewFakeClock(time.Now())
	is := start(t, ti.Config(), issuer.Options{KeyRefreshInterval: interval, Clock: c})
	before := ti.JWKSFetches()
	valid := ti.Token(t, nil)
	n := 0
	flood := func(tokens int) {
		for range tokens {
			n++
			if _, err := verify(t, is, forgeKid(t, valid, fmt.Sprintf("forged-%d", n))); reasonOf(err) != authn.ReasonUnknownKey {
				t.Fatalf("forged kid: want %q, got %v", authn.ReasonUnknownKey, err)
			}
		}
	}
	const intervals = 5
	for range intervals {
		flood(20)
		c.Step(interval)
		// The scheduled fetch is due; tokens arriving before it is made must not fetch.
		flood(20)
		settle(t, is, c)
	}
	if got := ti.JWKSFetches() - before; got != intervals {
		t.Fatalf("%d JWKS fetches in %d intervals of a flood; want exactly one per interval", got, intervals)
	}
}
