package authn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"
)

// Verifier checks tokens for one issuer.
type Verifier interface {
	// Verify checks a token whose unverified iss names this issuer and returns its
	// identity, or a *Denial.
	Verify(ctx context.Context, tok *Unverified) (*Identity, error)
}

// KeyAwaiter is implemented by verifiers that can tell from a token's header alone that it
// cannot be verified before their next key fetch, which their rate limit has already
// scheduled: a flood of forged key IDs is then answered without reading the tokens' claims.
type KeyAwaiter interface {
	// FetchScheduled reports whether a key fetch is scheduled: without one, no key is awaited.
	FetchScheduled() bool
	// AwaitsKey reports whether a token signed with alg by the key kid can only be undecided
	// (ReasonUnknownKey) until then: alg is accepted, the verifier is ready, kid is not in its
	// key set, and the fetch that could bring it is scheduled and may not be made sooner.
	AwaitsKey(alg, kid string) bool
}

// Mapper turns a verified identity into the Kubernetes user, or denies it with a *Denial.
type Mapper interface {
	Map(ctx context.Context, id *Identity) (User, error)
}

// UserValidator judges the final user of one issuer's tokens, after the identity mapping:
// kube-apiserver's userValidationRules.
type UserValidator interface {
	// ValidateUser returns a *Denial when u breaks a rule.
	ValidateUser(ctx context.Context, u User) error
}

// CacheObserver is told about cache lookups; metrics implement it.
type CacheObserver interface{ CacheLookup(hit bool) }

// Options tune an Authenticator.
type Options struct {
	// CacheTTL bounds how long a verified token is remembered (0 disables the cache).
	// An entry never outlives its token's exp.
	CacheTTL time.Duration
	// CacheMaxEntries bounds the number of remembered tokens.
	CacheMaxEntries int
	// CacheMaxBytes bounds the bytes the remembered tokens take (their packed identities plus
	// CacheEntryOverhead each); 0 means no bound. The oldest entries make room for new ones.
	CacheMaxBytes int64
	// MaxInFlight bounds the tokens verified at once; 0 means no bound. Beyond it a token is
	// undecided with ReasonOverloaded, which callers answer with HTTP 429.
	MaxInFlight int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Observer, if set, is told about cache hits and misses.
	Observer CacheObserver
	// UserValidators, by issuer URL, judge the final user of the issuers that have
	// userValidationRules; issuers without rules are absent.
	UserValidators map[string]UserValidator
}

// Authenticator answers "who holds this token?".
type Authenticator struct {
	issuers map[string]Verifier
	names   []string     // the issuers' URLs, for packing identities into the cache
	waiters []KeyAwaiter // every issuer, when each is a KeyAwaiter
	mapper  Mapper
	opts    Options
	cache   *gocache.Cache
	hashers sync.Pool // of *hasher, keyed for this process
	flight  singleflight.Group
	bound   sync.Mutex    // makes CacheMaxEntries and CacheMaxBytes hard bounds
	order   []string      // cache keys, oldest first (some may be gone already); under bound
	bytes   atomic.Int64  // what the cached entries take, by entrySize
	slots   chan struct{} // one per verification in flight, when MaxInFlight bounds them
}

// errOverloaded is the answer beyond MaxInFlight verifications.
var errOverloaded = Undecided(ReasonOverloaded, errors.New("too many tokens are being verified at once; retry shortly"))

// Result is the outcome of authenticating a token. Identity is set whenever the token
// verified, even if the mapping then denied it.
type Result struct {
	Identity *Identity
	User     User
	Cached   bool
}

// New returns an Authenticator that routes tokens to issuers by their iss claim and maps
// verified identities with mapper (nil: the claim-derived user is used as is).
func New(issuers map[string]Verifier, mapper Mapper, opts Options) (*Authenticator, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate cache key: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Authenticator{issuers: issuers, mapper: mapper, opts: opts}
	a.names = slices.Sorted(maps.Keys(issuers))
	for _, name := range a.names {
		w, ok := issuers[name].(KeyAwaiter)
		if !ok {
			a.waiters = nil
			break
		}
		a.waiters = append(a.waiters, w)
	}
	if opts.MaxInFlight > 0 {
		a.slots = make(chan struct{}, opts.MaxInFlight)
	}
	a.hashers.New = func() any { return &hasher{mac: hmac.New(sha256.New, key)} }
	if opts.CacheTTL > 0 {
		a.cache = gocache.New(opts.CacheTTL, time.Minute)
		a.cache.OnEvicted(func(_ string, v any) { a.bytes.Add(-entrySize(v.(string))) })
	}
	return a, nil
}

// Authenticate verifies raw, maps its identity, then lets the issuer's user validation rules
// judge the final user. Errors are *Denial values.
func (a *Authenticator) Authenticate(ctx context.Context, raw string) (Result, error) {
	id, cached, err := a.verify(ctx, raw)
	if err != nil {
		return Result{}, err
	}
	res := Result{Identity: id, User: id.User, Cached: cached}
	if a.mapper != nil {
		u, err := a.mapper.Map(ctx, id)
		if err != nil {
			return res, AsDenial(err)
		}
		res.User = u
	}
	if len(a.opts.UserValidators) > 0 {
		if v := a.opts.UserValidators[id.Issuer]; v != nil {
			if err := v.ValidateUser(ctx, res.User); err != nil {
				return res, AsDenial(err)
			}
		}
	}
	return res, nil
}

// CacheEntries reports how many verified tokens are remembered.
func (a *Authenticator) CacheEntries() int {
	if a.cache == nil {
		return 0
	}
	return a.cache.ItemCount()
}

func (a *Authenticator) verify(ctx context.Context, raw string) (*Identity, bool, error) {
	// What cannot be a JWT is refused before it costs a hash and a cache lookup.
	h, _, _, err := split(raw)
	if err != nil {
		return nil, false, Record(ctx, "parse", "", err)
	}
	if err := a.awaitedKey(ctx, h); err != nil {
		return nil, false, err
	}
	if a.cache == nil {
		id, err := a.verifyUncached(ctx, raw)
		return id, false, err
	}
	key := a.cacheKey(raw)
	if v, ok := a.cache.Get(key); ok {
		if id, err := unpackIdentity(v.(string), a.names); err == nil {
			a.observe(true)
			return id.withPayload(raw), true, nil
		}
		a.cache.Delete(key) // never expected: verify the token again
	}
	a.observe(false)
	// Concurrent requests for the same new token verify it once. The work is detached from
	// the first caller's cancellation so that its peers are not failed by it.
	v, err, _ := a.flight.Do(key, func() (any, error) {
		id, err := a.verifyUncached(context.WithoutCancel(ctx), raw)
		if err != nil {
			return nil, err
		}
		a.remember(key, id)
		return id, nil
	})
	if err != nil {
		return nil, false, err
	}
	return v.(*Identity), false, nil
}

func (a *Authenticator) verifyUncached(ctx context.Context, raw string) (*Identity, error) {
	tok, err := ParseUnverified(raw)
	if err != nil {
		return nil, Record(ctx, "parse", "", err)
	}
	if Traced(ctx) {
		Record(ctx, "parse", fmt.Sprintf("alg %s, kid %q, iss %q", tok.Algorithm, tok.KeyID, tok.Issuer), nil)
	}
	v, ok := a.issuers[tok.Issuer]
	if !ok {
		return nil, Record(ctx, "issuer", "", Deny(ReasonUnknownIssuer, "issuer %q is not configured", tok.Issuer))
	}
	if Traced(ctx) {
		Record(ctx, "issuer", tok.Issuer+" is configured", nil)
	}
	if a.slots != nil {
		select {
		case a.slots <- struct{}{}:
			defer func() { <-a.slots }()
		default:
			return nil, Record(ctx, "capacity", "", errOverloaded)
		}
	}
	id, err := v.Verify(ctx, tok)
	if err != nil {
		return nil, AsDenial(err)
	}
	return id, nil
}

// awaitedKey answers, from the token's header part alone, a token whose key no issuer knows
// while every issuer waits out its key fetch interval with a fetch already scheduled. Whatever
// issuer the token names, it cannot be verified before that fetch: such a token is undecided,
// as the issuer would answer it, and neither its claims nor the cache are read. This is what
// a flood of forged key IDs meets after its first token. It differs from the full path in two
// answers, both refusals: a token from an issuer that is not configured is unknown_key here,
// not unknown_issuer; and a token verified earlier with a key its issuer has since dropped is
// not taken from the cache in that window.
//
// Outside such windows it costs an atomic load per issuer.
func (a *Authenticator) awaitedKey(ctx context.Context, header string) error {
	if len(a.waiters) == 0 {
		return nil
	}
	for _, w := range a.waiters {
		if !w.FetchScheduled() {
			return nil
		}
	}
	hdr, err := decodeHeader(header)
	kid := hdr.str("kid")
	if err != nil || kid == "" {
		return nil // the full parse says what is wrong
	}
	for _, w := range a.waiters {
		if !w.AwaitsKey(hdr.str("alg"), kid) {
			return nil
		}
	}
	return Record(ctx, "key", "", Undecided(ReasonUnknownKey, keyAwaited{kid: kid}))
}

// keyAwaited says why a token was undecided from its header. A flood of forged key IDs meets
// it at every token, so it is formatted only when the line is logged.
type keyAwaited struct{ kid string }

func (e keyAwaited) Error() string {
	return fmt.Sprintf("no issuer publishes key %q yet; each has a key fetch scheduled within its refresh interval", e.kid)
}

// CacheEntryOverhead is what one cache entry takes beside its packed identity: its key, the
// cache's item and map slot, and its place in the eviction order (an estimate, measured in
// docs/performance.md).
const CacheEntryOverhead = 128

func entrySize(packed string) int64 { return int64(len(packed)) + CacheEntryOverhead }

// remember caches id, packed and without its claim set, until min(TTL, exp). The bounds on
// entries and bytes hold under any flood of valid tokens: the oldest entries are evicted to
// make room, and an identity larger than the whole byte bound is not cached.
func (a *Authenticator) remember(key string, id *Identity) {
	ttl := min(a.opts.CacheTTL, id.Expiry.Sub(a.opts.Now()))
	if ttl <= 0 {
		return
	}
	i, found := slices.BinarySearch(a.names, id.Issuer)
	if !found {
		return
	}
	packed := id.pack(i)
	size := entrySize(packed)
	maxBytes := a.opts.CacheMaxBytes
	if maxBytes > 0 && size > maxBytes {
		return
	}
	a.bound.Lock()
	defer a.bound.Unlock()
	a.cache.Delete(key) // an expired entry not yet swept: its bytes are counted once
	for len(a.order) > 0 && (a.opts.CacheMaxEntries > 0 && a.cache.ItemCount() >= a.opts.CacheMaxEntries ||
		maxBytes > 0 && a.bytes.Load()+size > maxBytes) {
		a.cache.Delete(a.order[0])
		a.order[0] = ""
		a.order = a.order[1:]
	}
	a.cache.Set(key, packed, ttl)
	a.bytes.Add(size)
	a.order = append(a.order, key)
	if len(a.order) > 2*a.cache.ItemCount()+1024 {
		// Most of the order is of entries that expired: keep those still cached.
		a.order = slices.DeleteFunc(a.order, func(k string) bool { _, ok := a.cache.Get(k); return !ok })
	}
}

// CacheBytes reports what the remembered tokens take, as CacheMaxBytes counts it.
func (a *Authenticator) CacheBytes() int64 { return a.bytes.Load() }

// cacheKey is the HMAC-SHA256 of the token under a key of this process, truncated to 128 bits
// (as HMAC-SHA-256-128 is, RFC 4868): the cache never holds a token, nor anything that would
// let one be checked offline, and two tokens collide with a chance of 2^-128.
func (a *Authenticator) cacheKey(raw string) string {
	h := a.hashers.Get().(*hasher)
	defer a.hashers.Put(h)
	h.mac.Reset()
	h.buf = append(h.buf[:0], raw...) // the hash takes bytes: copied here, not allocated per token
	_, _ = h.mac.Write(h.buf)
	if cap(h.buf) > maxPooledToken {
		h.buf = nil
	}
	var sum [sha256.Size]byte
	return string(h.mac.Sum(sum[:0])[:16])
}

// hasher is an HMAC with a buffer for the token it hashes.
type hasher struct {
	mac hash.Hash
	buf []byte
}

// maxPooledToken is the largest token buffer a pooled hasher keeps.
const maxPooledToken = 16 << 10

func (a *Authenticator) observe(hit bool) {
	if a.opts.Observer != nil {
		a.opts.Observer.CacheLookup(hit)
	}
}
