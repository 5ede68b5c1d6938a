package authn_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// countingVerifier accepts every token of its issuer and counts calls.
type countingVerifier struct {
	calls  atomic.Int64
	expiry time.Time
	delay  time.Duration
	deny   *authn.Denial
}

func (v *countingVerifier) Verify(_ context.Context, tok *authn.Unverified) (*authn.Identity, error) {
	v.calls.Add(1)
	time.Sleep(v.delay)
	if v.deny != nil {
		return nil, v.deny
	}
	return &authn.Identity{Issuer: tok.Issuer, Subject: "s", Expiry: v.expiry, User: authn.User{Name: "u"}}, nil
}

func token(iss string, n int) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "k"})
	c, _ := json.Marshal(map[string]any{"iss": iss, "n": n})
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + ".c2ln"
}

func newAuth(t *testing.T, issuers map[string]authn.Verifier, opts authn.Options) *authn.Authenticator {
	t.Helper()
	a, err := authn.New(issuers, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRoutesByIssuerAndDeniesUnknownWithoutCall(t *testing.T) {
	a, b := &countingVerifier{expiry: time.Now().Add(time.Hour)}, &countingVerifier{expiry: time.Now().Add(time.Hour)}
	auth := newAuth(t, map[string]authn.Verifier{"https://a": a, "https://b": b}, authn.Options{})
	if _, err := auth.Authenticate(context.Background(), token("https://b", 1)); err != nil {
		t.Fatal(err)
	}
	if a.calls.Load() != 0 || b.calls.Load() != 1 {
		t.Fatalf("calls a=%d b=%d; want the token routed to b only", a.calls.Load(), b.calls.Load())
	}
	_, err := auth.Authenticate(context.Background(), token("https://c", 1))
	var d *authn.Denial
	if !errors.As(err, &d) || d.Reason != authn.ReasonUnknownIssuer || d.Retryable {
		t.Fatalf("unknown issuer: want a clean %q, got %v", authn.ReasonUnknownIssuer, err)
	}
	if a.calls.Load()+b.calls.Load() != 1 {
		t.Fatal("an unknown issuer must not reach any verifier")
	}
}

func TestCacheHitsAndTTLCappedAtExpiry(t *testing.T) {
	now := time.Now()
	v := &countingVerifier{expiry: now.Add(time.Hour)}
	short := &countingVerifier{expiry: now.Add(300 * time.Millisecond)}
	auth := newAuth(t, map[string]authn.Verifier{"https://a": v, "https://short": short}, authn.Options{CacheTTL: time.Minute})
	ctx := context.Background()
	for range 3 {
		if _, err := auth.Authenticate(ctx, token("https://a", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if v.calls.Load() != 1 {
		t.Fatalf("%d verifications for one token; want 1 (cached)", v.calls.Load())
	}
	res, _ := auth.Authenticate(ctx, token("https://a", 1))
	if !res.Cached {
		t.Fatal("want a cache hit")
	}
	// An entry does not outlive its token's exp, even with a longer TTL.
	if _, err := auth.Authenticate(ctx, token("https://short", 1)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, err := auth.Authenticate(ctx, token("https://short", 1)); err != nil {
		t.Fatal(err)
	}
	if short.calls.Load() != 2 {
		t.Fatalf("%d verifications; want 2: the entry must expire with the token", short.calls.Load())
	}
}

func TestDenialsAreNotCached(t *testing.T) {
	v := &countingVerifier{deny: authn.Deny(authn.ReasonBadSignature, "no")}
	auth := newAuth(t, map[string]authn.Verifier{"https://a": v}, authn.Options{CacheTTL: time.Minute})
	for range 3 {
		if _, err := auth.Authenticate(context.Background(), token("https://a", 1)); err == nil {
			t.Fatal("want a denial")
		}
	}
	if v.calls.Load() != 3 {
		t.Fatalf("%d verifications; denials must not be cached", v.calls.Load())
	}
}

func TestConcurrentRequestsForOneTokenVerifyOnce(t *testing.T) {
	v := &countingVerifier{expiry: time.Now().Add(time.Hour), delay: 100 * time.Millisecond}
	auth := newAuth(t, map[string]authn.Verifier{"https://a": v}, authn.Options{CacheTTL: time.Minute})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := auth.Authenticate(context.Background(), token("https://a", 1)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if v.calls.Load() != 1 {
		t.Fatalf("%d verifications for 16 concurrent requests; want 1", v.calls.Load())
	}
}

func TestCacheEntryBound(t *testing.T) {
	v := &countingVerifier{expiry: time.Now().Add(time.Hour)}
	auth := newAuth(t, map[string]authn.Verifier{"https://a": v}, authn.Options{CacheTTL: time.Minute, CacheMaxEntries: 10})
	for n := range 50 {
		if _, err := auth.Authenticate(context.Background(), token("https://a", n)); err != nil {
			t.Fatal(err)
		}
	}
	if got := auth.CacheEntries(); got != 10 {
		t.Fatalf("%d cache entries; want the bound, 10", got)
	}
}

type denyMapper struct{}

func (denyMapper) Map(context.Context, *authn.Identity) (authn.User, error) {
	return authn.User{}, authn.Deny(authn.ReasonNoMapping, "no entry")
}

func TestMappingDenialKeepsIdentity(t *testing.T) {
	v := &countingVerifier{expiry: time.Now().Add(time.Hour)}
	auth, err := authn.New(map[string]authn.Verifier{"https://a": v}, denyMapper{}, authn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := auth.Authenticate(context.Background(), token("https://a", 1))
	var d *authn.Denial
	if !errors.As(err, &d) || d.Reason != authn.ReasonNoMapping {
		t.Fatalf("want %q, got %v", authn.ReasonNoMapping, err)
	}
	if res.Identity == nil || res.Identity.Issuer != "https://a" {
		t.Fatal("the identity must be reported with a mapping denial, for the log")
	}
}
