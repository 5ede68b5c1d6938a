package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
	"k8s.io/utils/clock"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// SigningAlgorithms are the JWS algorithms a token may be signed with: the asymmetric ones
// kube-apiserver accepts. "none" and the HMAC family are never accepted.
var SigningAlgorithms = []string{
	"RS256", "RS384", "RS512",
	"ES256", "ES384", "ES512",
	"PS256", "PS384", "PS512",
}

var joseAlgorithms = func() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(SigningAlgorithms))
	for i, a := range SigningAlgorithms {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}()

const maxJWKSBytes = 1 << 20

// keySet holds an issuer's public keys and is go-oidc's oidc.KeySet for its verifier: the
// signature is checked by go-jose, with the key the token's kid names (every key when it
// names none), as go-oidc's own remote key set does.
//
// What it adds is when it refetches. A token whose key is unknown, or whose signature fails
// with every key it could name, makes it refetch the JWKS, but never more often than once
// per minInterval, whatever the rate of such tokens: a flood of forged tokens costs the
// issuer at most one fetch per interval, and a key the issuer replaced under the same kid is
// picked up by the next fetch. While a fetch is pending such a token is undecided, not
// denied, so that kube-apiserver does not cache the answer.
type keySet struct {
	url         string
	client      *http.Client
	minInterval time.Duration
	clock       clock.WithDelayedExecution
	onFetch     func(keys int, err error)
	// onKeys, if set, is given the body of every key set fetched and used (to persist it).
	onKeys func(body []byte)
	// ctx bounds the background fetches: they stop when the issuer stops.
	ctx context.Context

	keys   atomic.Pointer[[]jose.JSONWebKey]
	flight singleflight.Group

	mu        sync.Mutex
	lastFetch time.Time   // the last attempt, successful or not
	deferred  atomic.Bool // a fetch is scheduled for the end of the current interval; set under mu
	health    keyHealth
}

// maxRefreshBackoff caps the wait between fetches while the issuer keeps failing.
const maxRefreshBackoff = 5 * time.Minute

// keyHealth is what the last fetches of a key set found, for /readyz?verbose.
type keyHealth struct {
	keys     int       // keys in use
	lastOK   time.Time // when they were fetched
	failures int       // consecutive failed fetches since then
	lastErr  error     // the newest failure
	next     time.Time // no fetch before this
	// previousRun is when the keys in use were saved by a previous run (persist.go); zero
	// once a live fetch replaced them.
	previousRun time.Time
}

// interval is the least time between two fetches: minInterval while the issuer answers,
// doubling with each consecutive failure up to maxRefreshBackoff. Callers hold mu.
func (k *keySet) interval() time.Duration {
	d := k.minInterval
	for range min(k.health.failures, 16) {
		d *= 2
		if d >= maxRefreshBackoff {
			return max(maxRefreshBackoff, k.minInterval)
		}
	}
	return d
}

// state reports the key set's health.
func (k *keySet) state() keyHealth {
	k.mu.Lock()
	defer k.mu.Unlock()
	h := k.health
	h.next = k.lastFetch.Add(k.interval())
	return h
}

// verdictKey carries, through go-oidc's Verify, the *authn.Denial of the key set: go-oidc
// formats the key set's error into a string, which would lose whether it is final.
type verdictKey struct{}

type verdict struct{ denial *authn.Denial }

func withVerdict(ctx context.Context) (context.Context, *verdict) {
	v := &verdict{}
	return context.WithValue(ctx, verdictKey{}, v), v
}

func (k *keySet) refuse(ctx context.Context, d *authn.Denial) error {
	if v, ok := ctx.Value(verdictKey{}).(*verdict); ok {
		v.denial = d
	}
	return d
}

// VerifySignature implements oidc.KeySet: it returns the payload of a token whose signature
// one of the issuer's keys verifies. go-oidc has checked the algorithm already; it is parsed
// again here with the same list, as go-oidc's remote key set does when called directly.
// go-jose's ParseSigned first copies the token without its whitespace, rune by rune; a token
// without any (every token the pre-parse lets through) is parsed as it is, to the same result.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	parse := jose.ParseSignedCompact
	if mayHoldSpace(raw) {
		parse = jose.ParseSigned
	}
	jws, err := parse(raw, joseAlgorithms)
	if err != nil {
		return nil, k.refuse(ctx, authn.Deny(authn.ReasonMalformed, "not a compact JWS: %w", err))
	}
	if len(jws.Signatures) != 1 {
		return nil, k.refuse(ctx, authn.Deny(authn.ReasonMalformed, "the token has %d signatures; want one", len(jws.Signatures)))
	}
	kid := jws.Signatures[0].Header.KeyID
	if payload, ok := k.verifies(jws, kid); ok {
		return payload, nil
	}
	if crit, ok := jws.Signatures[0].Protected.ExtraHeaders["crit"]; ok {
		// go-jose refused an extension it does not implement (RFC 7515 §4.1.11); a new key
		// would not change that.
		return nil, k.refuse(ctx, authn.Deny(authn.ReasonMalformed, "the header's crit names %v, which this verifier does not implement", crit))
	}
	// The key may be new, or replaced under the same kid: refetch, within the rate limit.
	fetched, err := k.refresh(ctx)
	switch {
	case err != nil:
		return nil, k.refuse(ctx, authn.Undecided(authn.ReasonKeysUnavailable, err))
	case !fetched && kid != "" && !k.has(kid):
		return nil, k.refuse(ctx, k.unknownKey(kid, false))
	case !fetched:
		return nil, k.refuse(ctx, authn.Undecided(authn.ReasonBadSignature, fmt.Errorf(
			"no key of the issuer (%s) verifies the signature; the key set is refreshed at most every %s, and the token is judged again then",
			describeKid(kid), k.minInterval)))
	}
	if payload, ok := k.verifies(jws, kid); ok {
		return payload, nil
	}
	if kid != "" && !k.has(kid) {
		return nil, k.refuse(ctx, k.unknownKey(kid, true))
	}
	return nil, k.refuse(ctx, authn.Deny(authn.ReasonBadSignature, "the signature does not verify with %s, freshly fetched", describeKid(kid)))
}

func describeKid(kid string) string {
	if kid == "" {
		return "any key (the token names none)"
	}
	return fmt.Sprintf("key %q", kid)
}

// verifies checks the signature with go-jose against the key kid names, or every key.
func (k *keySet) verifies(jws *jose.JSONWebSignature, kid string) ([]byte, bool) {
	keys := k.current()
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(&keys[i]); err == nil {
			return payload, true
		}
	}
	return nil, false
}

// ensure makes sure the key set holds a key with kid (any key, when kid is empty), refreshing
// it within the rate limit when it does not. It returns the denial for a key the issuer does
// not publish, or an undecided answer while the key set cannot be refreshed yet. It only
// refuses early: what it lets through is judged by go-oidc.
func (k *keySet) ensure(ctx context.Context, kid string) error {
	if kid == "" || k.has(kid) {
		return nil
	}
	fetched, err := k.refresh(ctx)
	switch {
	case err != nil:
		return authn.Undecided(authn.ReasonKeysUnavailable, err)
	case k.has(kid):
		return nil
	default:
		return k.unknownKey(kid, fetched)
	}
}

// unknownKey is the verdict on a key ID the key set lacks: denied when the key set was just
// fetched, undecided while the rate limit keeps it from being fetched.
func (k *keySet) unknownKey(kid string, fetched bool) *authn.Denial {
	if fetched {
		return authn.Deny(authn.ReasonUnknownKey, "the issuer publishes no key %q", kid)
	}
	return authn.Undecided(authn.ReasonUnknownKey, keyNotYetKnown{kid: kid, every: k.minInterval})
}

// keyNotYetKnown says why a key ID the key set lacks is undecided. A flood of forged key IDs
// meets it at every token, so it is formatted only when the line is logged.
type keyNotYetKnown struct {
	kid   string
	every time.Duration
}

func (e keyNotYetKnown) Error() string {
	return fmt.Sprintf("key %q is not known yet; the key set is refreshed at most every %s", e.kid, e.every)
}

// awaits reports whether kid is missing and can only arrive with the fetch already scheduled:
// what ensure would answer undecided without fetching.
func (k *keySet) awaits(kid string) bool {
	return kid != "" && k.deferred.Load() && !k.has(kid)
}

func (k *keySet) has(kid string) bool {
	keys := k.current()
	for i := range keys {
		if keys[i].KeyID == kid {
			return true
		}
	}
	return false
}

func (k *keySet) current() []jose.JSONWebKey {
	if p := k.keys.Load(); p != nil {
		return *p
	}
	return nil
}

// refresh fetches the key set now if the last fetch is older than the interval and no fetch
// is scheduled, and reports whether it did. Otherwise it makes sure one fetch is scheduled for
// the end of the interval, so that a key the issuer has just added is still picked up in
// time, and a flood across intervals still costs one fetch per interval: the scheduled fetch
// opens the next interval, and nothing fetches beside it.
//
// The interval grows while the issuer fails (see interval), so an issuer that is down is not
// hammered; the keys already fetched keep verifying tokens meanwhile.
func (k *keySet) refresh(ctx context.Context) (bool, error) {
	k.mu.Lock()
	if k.deferred.Load() {
		k.mu.Unlock()
		return false, nil
	}
	wait := k.lastFetch.Add(k.interval()).Sub(k.clock.Now())
	if wait > 0 {
		k.deferred.Store(true)
		// In a goroutine of its own: a fake clock runs the function under its lock.
		k.clock.AfterFunc(wait, func() { go k.scheduledFetch() })
		k.mu.Unlock()
		return false, nil
	}
	k.lastFetch = k.clock.Now()
	k.mu.Unlock()
	if _, err := k.fetch(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// scheduledFetch is the fetch refresh scheduled; it is skipped once the issuer has stopped.
func (k *keySet) scheduledFetch() {
	k.mu.Lock()
	k.lastFetch = k.clock.Now() // this fetch opens the next interval
	k.mu.Unlock()
	if k.ctx.Err() == nil {
		_, _ = k.fetch(k.ctx)
	}
	k.deferred.Store(false)
}

// fetch downloads the key set; concurrent callers share one request. A failed fetch keeps the
// keys in use.
func (k *keySet) fetch(ctx context.Context) (int, error) {
	v, err, _ := k.flight.Do("", func() (any, error) {
		keys, body, err := k.download(context.WithoutCancel(ctx))
		if err == nil {
			k.keys.Store(&keys) // before anyone is told: a caller told of the fetch sees its keys
		}
		k.record(len(keys), err)
		if k.onFetch != nil {
			k.onFetch(len(keys), err)
		}
		if err != nil {
			return 0, err
		}
		if k.onKeys != nil {
			k.onKeys(body)
		}
		return len(keys), nil
	})
	if err != nil {
		return 0, err
	}
	return v.(int), nil
}

// download fetches and parses the key set; it returns the body too, for persisting.
func (k *keySet) download(ctx context.Context) ([]jose.JSONWebKey, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch keys from %s: %w", k.url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch keys: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("fetch keys from %s: %w", k.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("fetch keys from %s: HTTP %s", k.url, resp.Status)
	}
	if len(body) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("fetch keys from %s: the key set is larger than %d bytes", k.url, maxJWKSBytes)
	}
	keys, err := parseKeySet(body)
	return keys, body, err
}

// parseKeySet decodes a JWKS with go-jose, keeping the public signing keys and skipping any
// entry it cannot use (encryption keys, unknown key types) rather than failing the whole set,
// as go-oidc does.
func parseKeySet(body []byte) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("the key set is not JSON: %w", err)
	}
	keys := make([]jose.JSONWebKey, 0, len(set.Keys))
	for _, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil || jwk.Use == "enc" || !jwk.IsPublic() || !jwk.Valid() {
			continue
		}
		keys = append(keys, jwk)
	}
	if len(keys) == 0 {
		return nil, errors.New("the key set has no usable signing key")
	}
	return keys, nil
}

func (k *keySet) record(keys int, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		k.health.failures++
		k.health.lastErr = err
		return
	}
	k.health = keyHealth{keys: keys, lastOK: k.clock.Now()}
}

// prime fetches the key set unconditionally, for the first load and its retries.
func (k *keySet) prime(ctx context.Context) (int, error) {
	k.mu.Lock()
	k.lastFetch = k.clock.Now()
	k.mu.Unlock()
	return k.fetch(ctx)
}

// mayHoldSpace reports whether s has a byte that is, or may begin, a rune unicode.IsSpace
// accepts: an ASCII control or space, or any non-ASCII byte (U+0085, U+00A0 and the other
// spaces are all encoded with one). A byte loop: a 40 KB token of 1,000 groups is scanned in
// microseconds, where a rune-by-rune IsSpace took a tenth of its verification.
func mayHoldSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x80 {
			return true
		}
	}
	return false
}
