package issuer_test

import (
	"context"
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

// A flood of tokens naming unknown keys costs the issuer at most one JWKS fetch per
// refresh interval (go-oidc alone would fetch once per token: coreos/go-oidc#482).
func TestUnknownKeyFloodIsRateLimited(t *testing.T) {
	ti := issuertest.New(t)
	is := start(t, ti.Config(), issuer.Options{KeyRefreshInterval: time.Hour})
	before := ti.JWKSFetches()
	var retryable, final int
	for n := range 200 {
		claims := ti.Claims(nil)
		tok := ti.Sign(t, issuertest.DefaultKeyID, "RS256", claims)
		// Re-label the header with a random kid: the signature no longer matters.
		forged := forgeKid(t, tok, fmt.Sprintf("forged-%d", n))
		_, err := verify(t, is, forged)
		var d *authn.Denial
		if !errors.As(err, &d) || d.Reason != authn.ReasonUnknownKey {
			t.Fatalf("token %d: want %q, got %v", n, authn.ReasonUnknownKey, err)
		}
		if d.Retryable {
			retryable++
		} else {
			final++
		}
	}
	if got := ti.JWKSFetches() - before; got > 1 {
		t.Fatalf("%d JWKS fetches for 200 unknown-kid tokens; want at most 1", got)
	}
	if final > 1 {
		t.Fatalf("%d tokens were denied after a fresh fetch; only the first may be", final)
	}
	// A known key still verifies during the flood.
	if _, err := verify(t, is, ti.Token(t, nil)); err != nil {
		t.Fatalf("valid token during the flood: %v", err)
	}
}

// A key the issuer adds is accepted without a restart.
func TestRotatedKeyIsPickedUp(t *testing.T) {
	ti := issuertest.New(t)
	is := start(t, ti.Config(), issuer.Options{KeyRefreshInterval: 200 * time.Millisecond})
	time.Sleep(250 * time.Millisecond) // let the interval of the first load pass
	ti.AddKey(t, "key-2", "RS256")
	if _, err := verify(t, is, ti.Sign(t, "key-2", "RS256", ti.Claims(nil))); err != nil {
		t.Fatalf("new key: %v", err)
	}
}

// Inside the rate-limit window, a new key is fetched at the end of the window even if no
// further token asks for it.
func TestNewKeyInsideWindowIsFetchedLater(t *testing.T) {
	ti := issuertest.New(t)
	// The window is long enough that generating the key (slow under the race detector on a
	// busy machine) cannot outlast it.
	is := start(t, ti.Config(), issuer.Options{KeyRefreshInterval: 3 * time.Second})
	ti.AddKey(t, "key-2", "RS256")
	tok := ti.Sign(t, "key-2", "RS256", ti.Claims(nil))
	_, err := verify(t, is, tok)
	var d *authn.Denial
	if !errors.As(err, &d) || !d.Retryable {
		t.Fatalf("inside the window: want a retryable denial, got %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err = verify(t, is, tok); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new key was never picked up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With the issuer down, tokens signed by keys already fetched keep verifying, and a token
// for an unseen key is undecided (retryable), not denied.
func TestIssuerOutage(t *testing.T) {
	ti := issuertest.New(t)
	is := start(t, ti.Config(), issuer.Options{KeyRefreshInterval: 10 * time.Millisecond})
	ti.SetDown(true)
	if _, err := verify(t, is, ti.Token(t, nil)); err != nil {
		t.Fatalf("known key during outage: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	_, err := verify(t, is, forgeKid(t, ti.Token(t, nil), "new-key"))
	var d *authn.Denial
	if !errors.As(err, &d) || d.Reason != authn.ReasonKeysUnavailable || !d.Retryable {
		t.Fatalf("unseen key during outage: want retryable %q, got %v", authn.ReasonKeysUnavailable, err)
	}
}

// An issuer that is down at start is retried in the background; until then its tokens are
// undecided, and /readyz says why.
func TestIssuerDownAtStart(t *testing.T) {
	ti := issuertest.New(t)
	ti.SetDown(true)
	is, err := issuer.New(ti.Config(), issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go is.Run(ctx)
	_, err = verify(t, is, ti.Token(t, nil))
	var d *authn.Denial
	if !errors.As(err, &d) || d.Reason != authn.ReasonIssuerNotReady || !d.Retryable {
		t.Fatalf("want retryable %q, got %v", authn.ReasonIssuerNotReady, err)
	}
	ti.SetDown(false)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := is.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	if _, err := verify(t, is, ti.Token(t, nil)); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// The discovered issuer must be exactly the configured one.
func TestDiscoveryIssuerMismatch(t *testing.T) {
	ti := issuertest.New(t)
	cfg := ti.Config()
	cfg.Issuer.URL = ti.URL + "/"
	cfg.Issuer.DiscoveryURL = ti.URL + "/.well-known/openid-configuration"
	is, err := issuer.New(cfg, issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	go is.Run(ctx)
	if err := is.WaitReady(ctx); err == nil {
		t.Fatal("an issuer whose discovery names another issuer must not become ready")
	}
	if st := is.Status(); st.Ready || !strings.Contains(st.Message, "must be identical") {
		t.Fatalf("status %+v", st)
	}
}

// An issuer awaits a key (authn.KeyAwaiter, which lets a token be answered from its header)
// exactly while Verify would answer a token naming it undecided without fetching: once an
// unknown key has scheduled the next fetch, and until that fetch is made.
func TestAwaitsKeyWhileAFetchIsScheduled(t *testing.T) {
	ti := issuertest.New(t)
	c := testingclock.NewFakeClock(time.Now()) // frozen: every token falls inside the interval
	is := start(t, ti.Config(), issuer.Options{KeyRefreshInterval: 10 * time.Second, Clock: c})
	if is.AwaitsKey("RS256", "forged-1") {
		t.Fatal("a key is awaited before any fetch is scheduled; the first unknown key must reach Verify, which schedules it")
	}
	if _, err := verify(t, is, forgeKid(t, ti.Token(t, nil), "forged-1")); reasonOf(err) != authn.ReasonUnknownKey {
		t.Fatalf("unknown key inside the interval: want %q, got %v", authn.ReasonUnknownKey, err)
	}
	fetches := ti.JWKSFetches()
	for _, tc := range []struct {
		alg, kid string
		want     bool
	}{
		{"RS256", "forged-2", true},
		{"ES256", "forged-2", true},
		{"RS256", issuertest.DefaultKeyID, false}, // published
		{"HS256", "forged-2", false},              // Verify refuses the algorithm first
		{"none", "forged-2", false},
		{"RS256", "", false}, // no kid: Verify tries every key
	} {
		if got := is.AwaitsKey(tc.alg, tc.kid); got != tc.want {
			t.Errorf("AwaitsKey(%q, %q) = %v, want %v", tc.alg, tc.kid, got, tc.want)
		}
	}
	_, err := verify(t, is, forgeKid(t, ti.Token(t, nil), "forged-2"))
	var d *authn.Denial
	if !errors.As(err, &d) || d.Reason != authn.ReasonUnknownKey || !d.Retryable {
		t.Fatalf("Verify disagrees with AwaitsKey: want undecided %q, got %v", authn.ReasonUnknownKey, err)
	}
	c.Step(10 * time.Second)
	settle(t, is, c)
	if ti.JWKSFetches() != fetches+1 {
		t.Fatalf("%d fetches after the interval; want the one scheduled", ti.JWKSFetches()-fetches)
	}
	if is.AwaitsKey("RS256", "forged-2") {
		t.Error("a key is still awaited after the scheduled fetch; the next unknown key must reach Verify again")
	}
}
