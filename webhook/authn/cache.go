package authn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
)

// cache remembers the identities the issuers verified, by an HMAC of the token, as
// k8s.io/apiserver/pkg/authentication/token/cache wraps an authenticator: only successes, each
// until min(TTL, exp), within bounds on entries and bytes; concurrent requests for the same new
// token verify it once.
//
// An entry names the issuer object that verified it (its slot), not only its URL: a
// generation of the Authenticator serves an entry only when that object is still the one it
// routes the URL to. An issuer removed or changed by a reconfiguration (Update) is a new
// object or none, so what its old configuration verified is never served again.
type cache struct {
	limits  atomic.Pointer[cacheLimits]
	store   *gocache.Cache
	shared  *interned    // the strings identities share: group names, extra values
	hashers sync.Pool    // of *hasher, keyed for this process
	bound   sync.Mutex   // makes the entry and byte bounds hard bounds
	order   []cacheKey   // oldest first (some may be gone already); under bound
	bytes   atomic.Int64 // what the cached entries take, by entrySize

	slotsMu sync.Mutex
	slots   atomic.Pointer[slotTable]
}

// cacheKey is a cache key's bytes, which hold no pointer: the eviction order costs the
// garbage collector nothing and keeps no evicted entry alive.
type cacheKey [keySize]byte

const keySize = 16

// cacheLimits are the bounds a reconfiguration may change in place.
type cacheLimits struct {
	ttl        time.Duration
	maxEntries int
	maxBytes   int64
	now        func() time.Time
}

// slotTable lists every issuer object the cache has remembered tokens for, by slot: append
// only, so that a slot never changes meaning.
type slotTable struct {
	urls      []string
	verifiers []Verifier
}

func newCache(opts Options) (*cache, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate cache key: %w", err)
	}
	c := &cache{store: gocache.New(opts.CacheTTL, time.Minute), shared: newInterned(internBudget(opts.CacheMaxBytes))}
	c.setLimits(opts)
	c.slots.Store(&slotTable{})
	c.store.OnEvicted(func(_ string, v any) {
		e := v.(*entry)
		e.gone.Store(true)
		c.bytes.Add(-entrySize(e.packed) - e.memo.Swap(nil).size())
	})
	c.hashers.New = func() any { return &hasher{mac: hmac.New(sha256.New, secret)} }
	return c, nil
}

func (c *cache) setLimits(opts Options) {
	c.limits.Store(&cacheLimits{ttl: opts.CacheTTL, maxEntries: opts.CacheMaxEntries, maxBytes: opts.CacheMaxBytes, now: opts.Now})
	c.bound.Lock()
	defer c.bound.Unlock()
	c.evict(c.limits.Load(), 0)
}

// slotsFor returns, for every issuer, its slot (adding the issuer objects not seen before),
// the slot table's URLs, and which slots the issuers hold.
func (c *cache) slotsFor(issuers map[string]Verifier) (byURL map[string]int, urls []string, live []bool) {
	c.slotsMu.Lock()
	defer c.slotsMu.Unlock()
	old := c.slots.Load()
	t := &slotTable{urls: slices.Clone(old.urls), verifiers: slices.Clone(old.verifiers)}
	byURL = make(map[string]int, len(issuers))
	for url, v := range issuers {
		i := slices.IndexFunc(t.verifiers, func(w Verifier) bool { return w == v })
		if i < 0 || t.urls[i] != url {
			i = len(t.urls)
			t.urls, t.verifiers = append(t.urls, url), append(t.verifiers, v)
		}
		byURL[url] = i
	}
	c.slots.Store(t)
	live = make([]bool, len(t.urls))
	for _, i := range byURL {
		live[i] = true
	}
	return byURL, t.urls, live
}

// entry is what the cache keeps for a token: its packed identity, and what the mapper
// remembers of it (MemoMapper).
type entry struct {
	packed string
	memo   atomic.Pointer[memoBox]
	// gone is set when the entry leaves the cache, so that a memo kept after that is not
	// counted in bytes for ever.
	gone atomic.Bool
}

// memoBox is a memo and the bytes it was counted as.
type memoBox struct {
	m     Memo
	bytes int64
}

func (b *memoBox) memo() Memo {
	if b == nil {
		return nil
	}
	return b.m
}

func (b *memoBox) size() int64 {
	if b == nil {
		return 0
	}
	return b.bytes
}

// verified is a verified token's identity and its cache entry, nil when it was not cached.
type verified struct {
	id    *Identity
	entry *entry
}

// verifyToken returns the identity of raw from the cache, or from the generation's router,
// its cache entry (nil when it could not be cached), and whether it came from the cache.
func (c *cache) verifyToken(ctx context.Context, g *generation, raw string) (*Identity, *entry, bool, error) {
	key := c.key(raw)
	if v, ok := c.store.Get(key); ok {
		e := v.(*entry)
		if g.serves(e.packed) {
			if id, err := unpackIdentity(e.packed, g.slotURLs, c.shared.list()); err == nil {
				c.observe(g, true)
				return id.withPayload(raw), e, true, nil
			}
			c.store.Delete(key) // never expected: verify the token again
		}
		// Else verified by an issuer object this generation no longer routes to (removed or
		// reconfigured): verified again, and replaced, below.
	}
	c.observe(g, false)
	// The work is detached from the first caller's cancellation so that its peers are not
	// failed by it. Each generation has its own group: a request never shares the
	// verification of a previous configuration.
	v, err, _ := g.flight.Do(key, func() (any, error) {
		id, err := g.router.VerifyToken(context.WithoutCancel(ctx), raw)
		if err != nil {
			return nil, err
		}
		return verified{id: id, entry: c.remember(g, key, id)}, nil
	})
	if err != nil {
		return nil, nil, false, err
	}
	vf := v.(verified)
	return vf.id, vf.entry, false, nil
}

// keep replaces the memo of e with m (nil: none), counting it against CacheMaxBytes: a memo
// that does not fit is not kept. A memo kept as e leaves the cache is dropped again.
func (c *cache) keep(e *entry, m Memo) {
	var box *memoBox
	if m != nil {
		box = &memoBox{m: m, bytes: m.Bytes()}
		if maxBytes := c.limits.Load().maxBytes; maxBytes > 0 && c.Bytes()+box.bytes > maxBytes {
			box = nil
		}
	}
	old := e.memo.Swap(box)
	c.bytes.Add(box.size() - old.size())
	// Evicted meanwhile: the eviction counted out what it found; take back what it did not.
	if box != nil && e.gone.Load() && e.memo.CompareAndSwap(box, nil) {
		c.bytes.Add(-box.bytes)
	}
}

// CacheEntryOverhead is what one cache entry takes beside its packed identity: its key, its
// entry, the cache's item and map slot, and its place in the eviction order (an estimate:
// BenchmarkCacheAtScale measures 210–246 bytes of live heap per identity of test/bench's
// shape, whose packed identity is ~80 bytes; docs/performance.md).
const CacheEntryOverhead = 128

func entrySize(packed string) int64 { return int64(len(packed)) + CacheEntryOverhead }

// internBudget is the share of the byte bound the table of shared strings may take: an
// eighth, or 8 MiB when the cache has no byte bound. It is set when the cache is made: a
// reconfiguration that changes the byte bound keeps the table's budget.
func internBudget(maxBytes int64) int64 {
	if maxBytes <= 0 {
		return 8 << 20
	}
	return maxBytes / 8
}

// remember caches id, packed and without its claim set, until min(TTL, exp), and returns its
// entry (nil when it is not cached). The bounds on entries and bytes hold under any flood of
// valid tokens: the oldest entries are evicted to make room, and an identity larger than the
// whole byte bound is not cached.
func (c *cache) remember(g *generation, key string, id *Identity) *entry {
	lim := c.limits.Load()
	ttl := min(lim.ttl, id.Expiry.Sub(lim.now()))
	if ttl <= 0 {
		return nil
	}
	i, found := g.slotOf[id.Issuer]
	if !found {
		return nil
	}
	// The key and the identity share one allocation: the key is the entry's first bytes.
	both := id.pack(key, i, c.shared)
	key, packed := both[:keySize], both[keySize:]
	size := entrySize(packed)
	if lim.maxBytes > 0 && size > lim.maxBytes-c.shared.bytes.Load() {
		return nil
	}
	c.bound.Lock()
	defer c.bound.Unlock()
	c.store.Delete(key) // an expired entry not yet swept: its bytes are counted once
	c.evict(lim, size)
	e := &entry{packed: packed}
	c.store.Set(key, e, ttl)
	c.bytes.Add(size)
	c.order = append(c.order, cacheKey([]byte(key)))
	if len(c.order) > 2*c.store.ItemCount()+1024 {
		// Most of the order is of entries that expired: keep those still cached.
		c.order = slices.DeleteFunc(c.order, func(k cacheKey) bool { _, ok := c.store.Get(string(k[:])); return !ok })
	}
	return e
}

// evict removes the oldest entries until one of size more fits the bounds (the byte bound
// less what the shared strings take). Callers hold bound.
func (c *cache) evict(lim *cacheLimits, size int64) {
	maxBytes := lim.maxBytes - c.shared.bytes.Load()
	for len(c.order) > 0 && (lim.maxEntries > 0 && c.store.ItemCount()+int(min(size, 1)) > lim.maxEntries ||
		lim.maxBytes > 0 && c.bytes.Load()+size > maxBytes) {
		c.store.Delete(string(c.order[0][:]))
		c.order = c.order[1:]
	}
}

// Bytes reports what the remembered tokens take, as CacheMaxBytes counts it: the entries and
// the table of the strings they share.
func (c *cache) Bytes() int64 { return c.bytes.Load() + c.shared.bytes.Load() }

// cacheKey is the HMAC-SHA256 of the token under a key of this process, truncated to 128 bits
// (as HMAC-SHA-256-128 is, RFC 4868): the cache never holds a token, nor anything that would
// let one be checked offline, and two tokens collide with a chance of 2^-128.
func (c *cache) key(raw string) string {
	h := c.hashers.Get().(*hasher)
	defer c.hashers.Put(h)
	h.mac.Reset()
	h.buf = append(h.buf[:0], raw...) // the hash takes bytes: copied here, not allocated per token
	_, _ = h.mac.Write(h.buf)
	if cap(h.buf) > maxPooledToken {
		h.buf = nil
	}
	var sum [sha256.Size]byte
	return string(h.mac.Sum(sum[:0])[:keySize])
}

// hasher is an HMAC with a buffer for the token it hashes.
type hasher struct {
	mac hash.Hash
	buf []byte
}

// maxPooledToken is the largest token buffer a pooled hasher keeps.
const maxPooledToken = 16 << 10

func (c *cache) observe(g *generation, hit bool) {
	if g.opts.Observer != nil {
		g.opts.Observer.CacheLookup(hit)
	}
}
