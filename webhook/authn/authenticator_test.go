package authn_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// claimsVerifier accepts every token and hands the identity the token's payload as claims,
// as the issuer does.
type claimsVerifier struct{ countingVerifier }

func (v *claimsVerifier) Verify(ctx context.Context, tok *authn.Unverified) (*authn.Identity, error) {
	id, err := v.countingVerifier.Verify(ctx, tok)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.Raw, ".")[1])
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	id.SetClaims(claims)
	return id, nil
}

// claimsMapper names the user after the token's n claim, as a username template does.
type claimsMapper struct{}

func (claimsMapper) Map(_ context.Context, id *authn.Identity) (authn.User, error) {
	claims, err := id.Claims()
	if err != nil {
		return authn.User{}, err
	}
	u := id.User
	u.Name = fmt.Sprintf("user-%v", claims["n"])
	return u, nil
}

// The cache keeps identities without their claim sets, yet the mapping still reads every
// claim on a cache hit: from the request's own token.
func TestMappingReadsClaimsOnCacheHits(t *testing.T) {
	v := &claimsVerifier{countingVerifier{expiry: time.Now().Add(time.Hour)}}
	auth, err := authn.New(map[string]authn.Verifier{"https://a": v}, claimsMapper{}, authn.Options{CacheTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{7, 7, 8, 7} {
		res, err := auth.Authenticate(context.Background(), token("https://a", n))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("user-%d", n); res.User.Name != want {
			t.Fatalf("token %d (cached %v): user %q, want %q", n, res.Cached, res.User.Name, want)
		}
	}
	if got := v.calls.Load(); got != 2 {
		t.Fatalf("%d verifications for two distinct tokens", got)
	}
}

// CacheMaxEntries is a hard bound, also when many new tokens are verified at once.
func TestCacheBoundUnderConcurrency(t *testing.T) {
	v := &countingVerifier{expiry: time.Now().Add(time.Hour)}
	auth := newAuth(t, map[string]authn.Verifier{"https://a": v}, authn.Options{CacheTTL: time.Minute, CacheMaxEntries: 10})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for n := range 50 {
				if _, err := auth.Authenticate(context.Background(), token("https://a", w*1000+n)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := auth.CacheEntries(); got != 10 {
		t.Fatalf("%d cached tokens; want exactly the bound, 10", got)
	}
}

// Beyond MaxInFlight verifications at once, a token is undecided as overloaded (the webhook
// answers 429, which kube-apiserver retries); a cache hit never waits for a slot.
func TestInFlightVerificationsAreBounded(t *testing.T) {
	v := &countingVerifier{expiry: time.Now().Add(time.Hour), delay: 300 * time.Millisecond}
	auth := newAuth(t, map[string]authn.Verifier{"https://a": v}, authn.Options{CacheTTL: time.Minute, MaxInFlight: 1})
	if _, err := auth.Authenticate(context.Background(), token("https://a", 0)); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, err := auth.Authenticate(context.Background(), token("https://a", 1))
		done <- err
	}()
	<-started
	deadline := time.Now().Add(5 * time.Second)
	for v.calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	_, err := auth.Authenticate(context.Background(), token("https://a", 2))
	var d *authn.Denial
	if !errors.As(err, &d) || d.Reason != authn.ReasonOverloaded || !d.Retryable {
		t.Fatalf("a second verification while one runs: want retryable %q, got %v", authn.ReasonOverloaded, err)
	}
	if _, err := auth.Authenticate(context.Background(), token("https://a", 0)); err != nil {
		t.Fatalf("a cached token while the slot is taken: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(context.Background(), token("https://a", 2)); err != nil {
		t.Fatalf("once the slot is free: %v", err)
	}
}

// awaitingVerifier is a countingVerifier that awaits the key IDs in its set.
type awaitingVerifier struct {
	countingVerifier
	awaited map[string]bool
}

func (v *awaitingVerifier) FetchScheduled() bool { return len(v.awaited) > 0 }

func (v *awaitingVerifier) AwaitsKey(alg, kid string) bool { return v.awaited[kid] }

// A token whose key every issuer awaits is undecided from its header, without reaching a
// verifier (KeyAwaiter); if any issuer might know the key, the token takes the full path.
func TestAwaitedKeyIsUndecidedFromTheHeader(t *testing.T) {
	withKid := func(iss, kid string) string {
		tok := token(iss, 1)
		h, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": kid})
		return base64.RawURLEncoding.EncodeToString(h) + tok[strings.IndexByte(tok, '.'):]
	}
	exp := time.Now().Add(time.Hour)
	a := &awaitingVerifier{countingVerifier{expiry: exp}, map[string]bool{"forged": true, "new": true}}
	b := &awaitingVerifier{countingVerifier{expiry: exp}, map[string]bool{"forged": true}}
	for _, opts := range []authn.Options{{}, {CacheTTL: time.Minute}} {
		auth := newAuth(t, map[string]authn.Verifier{"https://a": a, "https://b": b}, opts)
		for _, tc := range []struct {
			name, token string
			want        authn.Reason // "" for the full path, which these verifiers accept
		}{
			{"awaited by every issuer", withKid("https://a", "forged"), authn.ReasonUnknownKey},
			// The one answer the header changes: the issuer is not read.
			{"awaited, issuer not configured", withKid("https://c", "forged"), authn.ReasonUnknownKey},
			{"awaited by one issuer only", withKid("https://a", "new"), ""},
			{"awaited by none", withKid("https://b", "k"), ""},
			{"no kid", withKid("https://b", ""), ""},
		} {
			before := a.calls.Load() + b.calls.Load()
			_, err := auth.Authenticate(context.Background(), tc.token)
			calls := a.calls.Load() + b.calls.Load() - before
			if tc.want == "" {
				if err != nil || calls != 1 {
					t.Errorf("cache %v, %s: got %v after %d verifier calls; want it verified once", opts.CacheTTL, tc.name, err, calls)
				}
				continue
			}
			var d *authn.Denial
			if !errors.As(err, &d) || d.Reason != tc.want || !d.Retryable || calls != 0 {
				t.Errorf("cache %v, %s: got %v after %d verifier calls; want undecided %q without any", opts.CacheTTL, tc.name, err, calls, tc.want)
			}
		}
	}

	// The header is read before the cache: a token verified earlier whose key every issuer
	// now lacks is refused while their fetches are scheduled, and served again after.
	auth := newAuth(t, map[string]authn.Verifier{"https://a": a, "https://b": b}, authn.Options{CacheTTL: time.Minute})
	dropped := withKid("https://a", "dropped")
	if _, err := auth.Authenticate(context.Background(), dropped); err != nil {
		t.Fatal(err)
	}
	a.awaited["dropped"], b.awaited["dropped"] = true, true
	_, err := auth.Authenticate(context.Background(), dropped)
	if d := (*authn.Denial)(nil); !errors.As(err, &d) || d.Reason != authn.ReasonUnknownKey || !d.Retryable {
		t.Errorf("cached token whose key is awaited: got %v, want undecided %q", err, authn.ReasonUnknownKey)
	}
	a.awaited, b.awaited = nil, nil // the fetches were made; nothing is awaited
	before := a.calls.Load()
	if res, err := auth.Authenticate(context.Background(), dropped); err != nil || !res.Cached || a.calls.Load() != before {
		t.Errorf("no fetch scheduled: got cached=%v, %v after %d calls; want the cached identity", res.Cached, err, a.calls.Load()-before)
	}
}

// fatVerifier returns identities with 200 group GUIDs, as Entra ID sends them.
type fatVerifier struct{ calls atomic.Int64 }

func (v *fatVerifier) Verify(_ context.Context, tok *authn.Unverified) (*authn.Identity, error) {
	v.calls.Add(1)
	groups := make([]string, 200)
	for i := range groups {
		groups[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", v.calls.Load(), i)
	}
	return &authn.Identity{Issuer: tok.Issuer, Subject: "s", Expiry: time.Now().Add(time.Hour),
		Groups: groups, User: authn.User{Name: "u", Groups: groups}}, nil
}

// The cache is bounded by bytes as well as entries (the security review: 100,000 entries of
// 200 GUID groups would take ~1.5 GiB): the oldest entries make room for new ones.
func TestCacheByteBound(t *testing.T) {
	v := &fatVerifier{}
	const maxBytes = 64 << 10
	auth := newAuth(t, map[string]authn.Verifier{"https://a": v}, authn.Options{CacheTTL: time.Minute, CacheMaxEntries: 1000, CacheMaxBytes: maxBytes})
	ctx := context.Background()
	for n := range 40 {
		if _, err := auth.Authenticate(ctx, token("https://a", n)); err != nil {
			t.Fatal(err)
		}
		if b := auth.CacheBytes(); b > maxBytes {
			t.Fatalf("after %d tokens the cache takes %d bytes; want at most %d", n+1, b, maxBytes)
		}
	}
	entries := auth.CacheEntries()
	if entries < 2 || entries >= 40 {
		t.Fatalf("%d entries cached; want as many as fit in %d bytes", entries, maxBytes)
	}
	// The newest tokens are the ones remembered; the oldest were evicted.
	calls := v.calls.Load()
	if res, err := auth.Authenticate(ctx, token("https://a", 39)); err != nil || !res.Cached {
		t.Fatalf("the newest token: cached=%v, %v", res.Cached, err)
	}
	if res, err := auth.Authenticate(ctx, token("https://a", 0)); err != nil || res.Cached || v.calls.Load() != calls+1 {
		t.Fatalf("the oldest token: cached=%v, %v; want it evicted and verified again", res.Cached, err)
	}
}
