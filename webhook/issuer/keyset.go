package issuer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// SigningAlgorithms are the JWS algorithms a token may be signed with: the asymmetric ones
// kube-apiserver accepts. "none" and the HMAC family are never accepted.
var SigningAlgorithms = []string{
	"RS256", "RS384", "RS512",
	"ES256", "ES384", "ES512",
	"PS256", "PS384", "PS512",
}

const maxJWKSBytes = 1 << 20

// keySet holds an issuer's public keys. A token signed by a key it does not know makes it
// refetch the JWKS, but never more often than once per minInterval, whatever the rate of
// such tokens: a flood of forged key IDs costs the issuer at most one fetch per interval.
type keySet struct {
	url         string
	client      *http.Client
	minInterval time.Duration
	now         func() time.Time
	onFetch     func(keys int, err error)

	keys   atomic.Pointer[[]publicKey]
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

// verify checks the token's signature with the issuer's keys: the key its kid names, or
// every key when it names none, as go-oidc does. The caller has made sure that the key set
// holds a named kid (ensure). A token that names no key may be signed by one the issuer added
// since the last fetch: the key set is then refreshed, within the rate limit, and tried again.
func (k *keySet) verify(ctx context.Context, tok *authn.Unverified) error {
	if k.verifies(tok) {
		return nil
	}
	if tok.KeyID != "" {
		return authn.Deny(authn.ReasonBadSignature, "signature does not verify with key %q", tok.KeyID)
	}
	fetched, err := k.refresh(ctx)
	switch {
	case err != nil:
		return authn.Undecided(authn.ReasonKeysUnavailable, err)
	case !fetched:
		return authn.Undecided(authn.ReasonUnknownKey, fmt.Errorf(
			"the token names no key and no key of the issuer verifies it; the key set is refreshed at most every %s", k.minInterval))
	case k.verifies(tok):
		return nil
	default:
		return authn.Deny(authn.ReasonBadSignature, "signature does not verify with any key of the issuer")
	}
}

func (k *keySet) verifies(tok *authn.Unverified) bool {
	input := tok.SigningInput()
	keys := k.current()
	for i := range keys {
		if tok.KeyID != "" && keys[i].id != tok.KeyID {
			continue
		}
		if keys[i].verifies(tok.Algorithm, input, tok.Signature) {
			return true
		}
	}
	return false
}

// ensure makes sure the key set holds a key with kid (any key, when kid is empty), refreshing
// it within the rate limit when it does not. It returns the denial for a key the issuer does
// not publish, or an undecided answer while the key set cannot be refreshed yet.
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
	for _, key := range k.current() {
		if key.id == kid {
			return true
		}
	}
	return false
}

func (k *keySet) current() []publicKey {
	if p := k.keys.Load(); p != nil {
		return *p
	}
	return nil
}

// refresh fetches the key set now if the last fetch is older than minInterval, and reports
// whether it did. Otherwise it schedules one fetch for the end of the interval, so that a
// key the issuer has just added is still picked up in time.
//
// The interval grows while the issuer fails (see interval), so an issuer that is down is not
// hammered; the keys already fetched keep verifying tokens meanwhile.
func (k *keySet) refresh(ctx context.Context) (bool, error) {
	k.mu.Lock()
	wait := k.lastFetch.Add(k.interval()).Sub(k.now())
	if wait > 0 {
		if !k.deferred.Load() {
			k.deferred.Store(true)
			time.AfterFunc(wait, func() {
				k.mu.Lock()
				k.deferred.Store(false)
				k.lastFetch = k.now() // this fetch opens the next interval
				k.mu.Unlock()
				_, _ = k.fetch(context.Background())
			})
		}
		k.mu.Unlock()
		return false, nil
	}
	k.lastFetch = k.now()
	k.mu.Unlock()
	if _, err := k.fetch(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// fetch downloads the key set; concurrent callers share one request. A failed fetch keeps the
// keys in use.
func (k *keySet) fetch(ctx context.Context) (int, error) {
	v, err, _ := k.flight.Do("", func() (any, error) {
		keys, err := k.download(context.WithoutCancel(ctx))
		k.record(len(keys), err)
		if k.onFetch != nil {
			k.onFetch(len(keys), err)
		}
		if err != nil {
			return 0, err
		}
		k.keys.Store(&keys)
		return len(keys), nil
	})
	if err != nil {
		return 0, err
	}
	return v.(int), nil
}

func (k *keySet) download(ctx context.Context) ([]publicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch keys from %s: %w", k.url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch keys: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch keys from %s: %w", k.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch keys from %s: HTTP %s", k.url, resp.Status)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("fetch keys from %s: the key set is larger than %d bytes", k.url, maxJWKSBytes)
	}
	return parseKeySet(body)
}

// parseKeySet decodes a JWKS with go-jose, keeping the public signing keys and skipping any
// entry it cannot use (encryption keys, unknown key types) rather than failing the whole set.
func parseKeySet(body []byte) ([]publicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("the key set is not JSON: %w", err)
	}
	keys := make([]publicKey, 0, len(set.Keys))
	for _, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil || jwk.Use == "enc" || !jwk.IsPublic() || !jwk.Valid() {
			continue
		}
		if key, err := newPublicKey(jwk); err == nil {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("the key set has no usable signing key")
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
	k.health = keyHealth{keys: keys, lastOK: k.now()}
}

// prime fetches the key set unconditionally, for the first load and its retries.
func (k *keySet) prime(ctx context.Context) (int, error) {
	k.mu.Lock()
	k.lastFetch = k.now()
	k.mu.Unlock()
	return k.fetch(ctx)
}
