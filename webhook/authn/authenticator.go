package authn

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

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

// MemoMapper is a Mapper whose result for a token depends only on the token and on a version
// of the mapper's own (the mapping in force): the cache keeps the result with the token, and a
// cache hit reuses it while that version lasts instead of mapping the token again.
type MemoMapper interface {
	Mapper
	// MapMemo maps id as Map does. memo is what MapMemo returned for an earlier request with
	// the same cached token, nil if none; while it is valid, the result may come from it. It
	// returns the memo to keep with the token from now on: nil keeps none, memo itself keeps
	// it. Memos must be comparable (pointers).
	MapMemo(ctx context.Context, id *Identity, memo Memo) (User, Memo, error)
}

// Memo is what a MemoMapper remembers of one cached token.
type Memo interface {
	// Bytes estimates the memory the memo holds beyond what the token's cached identity does;
	// the cache counts it against CacheMaxBytes.
	Bytes() int64
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
	// CacheEntryOverhead each, the memos kept with them and the strings they share); 0 means
	// no bound. The oldest entries make room for new ones. On Linux and macOS the records are
	// outside the Go heap (chunk_mmap.go): this is memory beside GOMEMLIMIT, not within it.
	// An identity larger than a chunk (a 64th of the bound, at most 1 MiB) is not cached.
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

// Authenticator answers "who holds this token?": the router sends it to its issuer, the
// cache (when on) remembers what the issuers verified, and the mapper and the issuers' user
// rules make the final user on every request; a MemoMapper's result is remembered with the
// token, for as long as it stays valid. Update replaces the issuers and the limits
// while it serves: each request runs against one generation of them from start to end.
type Authenticator struct {
	gen    atomic.Pointer[generation]
	mapper Mapper
	mu     sync.Mutex // serialises Update
}

// generation is one configuration of the issuers and limits.
type generation struct {
	router *router
	cache  *cache // nil when CacheTTL is 0
	opts   Options
	flight singleflight.Group // verifications of new tokens in this generation
	// slotOf is the cache slot of each issuer; slotURLs the cache's slot table as it was when
	// the generation was made; live marks the slots of this generation's issuer objects.
	slotOf   map[string]int
	slotURLs []string
	live     []bool
}

// serves reports whether a cached entry was verified by an issuer object of this generation.
func (g *generation) serves(packed string) bool {
	u := unpacker{s: packed}
	i := u.uint()
	return u.err == nil && i < uint64(len(g.live)) && g.live[i]
}

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
	a := &Authenticator{mapper: mapper}
	if err := a.Update(issuers, opts); err != nil {
		return nil, err
	}
	return a, nil
}

// Update makes issuers and opts the ones every new request uses; requests already running
// finish with the previous ones. Issuers are compared by identity (they must be comparable,
// as pointers are): a token verified by an issuer object that issuers no longer holds (one
// removed, or replaced by a reconfigured one) is not served from the cache again. The cache
// keeps its entries otherwise, within the new bounds; it is emptied when CacheTTL shrinks, so
// that no entry outlives the new TTL. MaxInFlight applies to verifications that start after
// the update.
func (a *Authenticator) Update(issuers map[string]Verifier, opts Options) error {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.gen.Load()
	g := &generation{router: newRouter(issuers, opts.MaxInFlight), opts: opts}
	if opts.CacheTTL > 0 {
		if old != nil && old.cache != nil && opts.CacheTTL >= old.opts.CacheTTL {
			g.cache = old.cache
			g.cache.setLimits(opts)
		} else {
			c, err := newCache(opts)
			if err != nil {
				return err
			}
			g.cache = c
		}
		g.slotOf, g.slotURLs, g.live = g.cache.slotsFor(issuers)
	}
	a.gen.Store(g)
	return nil
}

// Authenticate verifies raw, maps its identity, then lets the issuer's user validation rules
// judge the final user. Errors are *Denial values.
func (a *Authenticator) Authenticate(ctx context.Context, raw string) (Result, error) {
	g := a.gen.Load()
	id, e, cached, err := g.verify(ctx, raw)
	if err != nil {
		return Result{}, err
	}
	res := Result{Identity: id, User: id.User, Cached: cached}
	if a.mapper != nil {
		u, err := a.mapIdentity(ctx, g, id, e)
		if err != nil {
			return res, AsDenial(err)
		}
		res.User = u
	}
	if len(g.opts.UserValidators) > 0 {
		if v := g.opts.UserValidators[id.Issuer]; v != nil {
			if err := v.ValidateUser(ctx, res.User); err != nil {
				return res, AsDenial(err)
			}
		}
	}
	return res, nil
}

// mapIdentity maps id, through the memo kept with its cache entry e (if cached) when the
// mapper keeps one.
func (a *Authenticator) mapIdentity(ctx context.Context, g *generation, id *Identity, e entryRef) (User, error) {
	mm, ok := a.mapper.(MemoMapper)
	if !ok || !e.cached() {
		return a.mapper.Map(ctx, id)
	}
	prev := g.cache.memo(e)
	u, next, err := mm.MapMemo(ctx, id, prev)
	if next != prev {
		g.cache.keep(e, next)
	}
	return u, err
}

// CacheEntries reports how many verified tokens are remembered.
func (a *Authenticator) CacheEntries() int {
	g := a.gen.Load()
	if g.cache == nil {
		return 0
	}
	return g.cache.entries()
}

// CacheBytes reports what the remembered tokens take, as CacheMaxBytes counts it.
func (a *Authenticator) CacheBytes() int64 {
	g := a.gen.Load()
	if g.cache == nil {
		return 0
	}
	return g.cache.Bytes()
}

// verify returns the identity of raw, its cache entry (none when not cached), and whether it
// came from the cache.
func (g *generation) verify(ctx context.Context, raw string) (*Identity, entryRef, bool, error) {
	// What cannot be a JWT is refused before it costs a hash and a cache lookup.
	h, _, _, err := split(raw)
	if err != nil {
		return nil, entryRef{}, false, Record(ctx, "parse", "", err)
	}
	if err := g.router.awaitedKey(ctx, h); err != nil {
		return nil, entryRef{}, false, err
	}
	if g.cache == nil {
		id, err := g.router.VerifyToken(ctx, raw)
		return id, entryRef{}, false, err
	}
	return g.cache.verifyToken(ctx, g, raw)
}
