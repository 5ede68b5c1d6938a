package authn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// A reconfiguration takes effect for the next request: a removed issuer's tokens are refused
// even when cached; a reconfigured issuer (a new object for the same URL) verifies its tokens
// again instead of serving what its old configuration verified; an unchanged issuer keeps its
// cached tokens.
func TestUpdateRetiresCachedTokensOfRemovedAndChangedIssuers(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	a, b := &countingVerifier{expiry: exp}, &countingVerifier{expiry: exp}
	opts := authn.Options{CacheTTL: time.Minute, CacheMaxEntries: 100}
	auth := newAuth(t, map[string]authn.Verifier{"https://a": a, "https://b": b}, opts)
	ctx := context.Background()
	tokA, tokB := token("https://a", 1), token("https://b", 1)
	for range 2 {
		for _, tok := range []string{tokA, tokB} {
			if _, err := auth.Authenticate(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
	}
	if a.calls.Load() != 1 || b.calls.Load() != 1 {
		t.Fatalf("before the update: calls a=%d b=%d, want one each (then cached)", a.calls.Load(), b.calls.Load())
	}

	// b is reconfigured (a new object); a is removed; c is added.
	b2, c := &countingVerifier{expiry: exp}, &countingVerifier{expiry: exp}
	if err := auth.Update(map[string]authn.Verifier{"https://b": b2, "https://c": c}, opts); err != nil {
		t.Fatal(err)
	}
	_, err := auth.Authenticate(ctx, tokA)
	var d *authn.Denial
	if !errors.As(err, &d) || d.Reason != authn.ReasonUnknownIssuer {
		t.Fatalf("a cached token of a removed issuer: %v, want %s", err, authn.ReasonUnknownIssuer)
	}
	res, err := auth.Authenticate(ctx, tokB)
	if err != nil || res.Cached || b2.calls.Load() != 1 || b.calls.Load() != 1 {
		t.Fatalf("a token of a reconfigured issuer: cached=%v err=%v, calls old=%d new=%d; want it verified by the new one",
			res.Cached, err, b.calls.Load(), b2.calls.Load())
	}
	if res, err := auth.Authenticate(ctx, tokB); err != nil || !res.Cached {
		t.Fatalf("the new configuration's result is cached again: cached=%v err=%v", res.Cached, err)
	}
	if _, err := auth.Authenticate(ctx, token("https://c", 1)); err != nil || c.calls.Load() != 1 {
		t.Fatalf("the added issuer: %v (calls %d)", err, c.calls.Load())
	}

	// An update that keeps b2 (and grows the TTL) keeps its entries.
	if err := auth.Update(map[string]authn.Verifier{"https://b": b2, "https://c": c}, authn.Options{CacheTTL: 2 * time.Minute, CacheMaxEntries: 100}); err != nil {
		t.Fatal(err)
	}
	if res, err := auth.Authenticate(ctx, tokB); err != nil || !res.Cached || b2.calls.Load() != 1 {
		t.Fatalf("an unchanged issuer across an update that grows the TTL: cached=%v err=%v calls=%d", res.Cached, err, b2.calls.Load())
	}
}

// The cache's bounds change in place: a smaller entry bound evicts the oldest entries at
// once; a shorter TTL empties the cache, so that no entry outlives it.
func TestUpdateAppliesCacheBounds(t *testing.T) {
	v := &countingVerifier{expiry: time.Now().Add(time.Hour)}
	issuers := map[string]authn.Verifier{"https://a": v}
	auth := newAuth(t, issuers, authn.Options{CacheTTL: time.Minute, CacheMaxEntries: 10})
	ctx := context.Background()
	for n := range 10 {
		if _, err := auth.Authenticate(ctx, token("https://a", n)); err != nil {
			t.Fatal(err)
		}
	}
	if got := auth.CacheEntries(); got != 10 {
		t.Fatalf("%d entries, want 10", got)
	}
	if err := auth.Update(issuers, authn.Options{CacheTTL: time.Minute, CacheMaxEntries: 4}); err != nil {
		t.Fatal(err)
	}
	if got := auth.CacheEntries(); got != 4 {
		t.Fatalf("%d entries after lowering the bound to 4", got)
	}
	if res, err := auth.Authenticate(ctx, token("https://a", 9)); err != nil || !res.Cached {
		t.Fatalf("the newest entry must be kept: cached=%v err=%v", res.Cached, err)
	}
	if err := auth.Update(issuers, authn.Options{CacheTTL: 30 * time.Second, CacheMaxEntries: 4}); err != nil {
		t.Fatal(err)
	}
	if got := auth.CacheEntries(); got != 0 {
		t.Fatalf("%d entries after shortening the TTL", got)
	}
	if err := auth.Update(issuers, authn.Options{}); err != nil {
		t.Fatal(err)
	}
	if res, err := auth.Authenticate(ctx, token("https://a", 9)); err != nil || res.Cached {
		t.Fatalf("with the cache turned off: cached=%v err=%v", res.Cached, err)
	}
}

// MaxInFlight changes live: beyond the new bound a token is overloaded.
func TestUpdateAppliesMaxInFlight(t *testing.T) {
	block := make(chan struct{})
	v := &blockingVerifier{release: block, started: make(chan struct{}, 4)}
	issuers := map[string]authn.Verifier{"https://a": v}
	auth := newAuth(t, issuers, authn.Options{MaxInFlight: 8})
	if err := auth.Update(issuers, authn.Options{MaxInFlight: 1}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := auth.Authenticate(context.Background(), token("https://a", 1)); done <- err }()
	<-v.started
	_, err := auth.Authenticate(context.Background(), token("https://a", 2))
	var d *authn.Denial
	if !errors.As(err, &d) || d.Reason != authn.ReasonOverloaded {
		t.Fatalf("a second token beyond MaxInFlight 1: %v", err)
	}
	close(block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type blockingVerifier struct {
	release <-chan struct{}
	started chan struct{}
}

func (v *blockingVerifier) Verify(_ context.Context, tok *authn.Unverified) (*authn.Identity, error) {
	v.started <- struct{}{}
	<-v.release
	return &authn.Identity{Issuer: tok.Issuer, Subject: "s", Expiry: time.Now().Add(time.Hour), User: authn.User{Name: "u"}}, nil
}
