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
	"golang.org/x/sync/singleflight"
)

// cache remembers the identities a TokenVerifier gave, by an HMAC of the token, as
// k8s.io/apiserver/pkg/authentication/token/cache wraps an authenticator: only successes, each
// until min(TTL, exp), within bounds on entries and bytes; concurrent requests for the same new
// token verify it once.
type cache struct {
	next    TokenVerifier
	names   []string // the issuers' URLs, sorted: an identity packs its issuer's index
	opts    Options
	store   *gocache.Cache
	hashers sync.Pool // of *hasher, keyed for this process
	flight  singleflight.Group
	bound   sync.Mutex   // makes CacheMaxEntries and CacheMaxBytes hard bounds
	order   []string     // cache keys, oldest first (some may be gone already); under bound
	bytes   atomic.Int64 // what the cached entries take, by entrySize
}

func newCache(next TokenVerifier, names []string, opts Options) (*cache, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate cache key: %w", err)
	}
	c := &cache{next: next, names: names, opts: opts, store: gocache.New(opts.CacheTTL, time.Minute)}
	c.store.OnEvicted(func(_ string, v any) {
		e := v.(*entry)
		e.gone.Store(true)
		c.bytes.Add(-entrySize(e.packed) - e.memo.Swap(nil).size())
	})
	c.hashers.New = func() any { return &hasher{mac: hmac.New(sha256.New, secret)} }
	return c, nil
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

// verifyToken returns the identity of raw from the cache, or from the verifier it wraps, its
// cache entry (nil when it could not be cached), and whether it came from the cache.
func (c *cache) verifyToken(ctx context.Context, raw string) (*Identity, *entry, bool, error) {
	key := c.key(raw)
	if v, ok := c.store.Get(key); ok {
		e := v.(*entry)
		if id, err := unpackIdentity(e.packed, c.names); err == nil {
			c.observe(true)
			return id.withPayload(raw), e, true, nil
		}
		c.store.Delete(key) // never expected: verify the token again
	}
	c.observe(false)
	// The work is detached from the first caller's cancellation so that its peers are not
	// failed by it.
	v, err, _ := c.flight.Do(key, func() (any, error) {
		id, err := c.next.VerifyToken(context.WithoutCancel(ctx), raw)
		if err != nil {
			return nil, err
		}
		return verified{id: id, entry: c.remember(key, id)}, nil
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
		if maxBytes := c.opts.CacheMaxBytes; maxBytes > 0 && c.bytes.Load()+box.bytes > maxBytes {
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

// CacheEntryOverhead is what one cache entry takes beside its packed identity: its key, the
// cache's item and map slot, and its place in the eviction order (an estimate, measured in
// docs/performance.md).
const CacheEntryOverhead = 128

func entrySize(packed string) int64 { return int64(len(packed)) + CacheEntryOverhead }

// remember caches id, packed and without its claim set, until min(TTL, exp), and returns its
// entry (nil when it is not cached). The bounds on entries and bytes hold under any flood of
// valid tokens: the oldest entries are evicted to make room, and an identity larger than the
// whole byte bound is not cached.
func (c *cache) remember(key string, id *Identity) *entry {
	ttl := min(c.opts.CacheTTL, id.Expiry.Sub(c.opts.Now()))
	if ttl <= 0 {
		return nil
	}
	i, found := slices.BinarySearch(c.names, id.Issuer)
	if !found {
		return nil
	}
	packed := id.pack(i)
	size := entrySize(packed)
	maxBytes := c.opts.CacheMaxBytes
	if maxBytes > 0 && size > maxBytes {
		return nil
	}
	c.bound.Lock()
	defer c.bound.Unlock()
	c.store.Delete(key) // an expired entry not yet swept: its bytes are counted once
	for len(c.order) > 0 && (c.opts.CacheMaxEntries > 0 && c.store.ItemCount() >= c.opts.CacheMaxEntries ||
		maxBytes > 0 && c.bytes.Load()+size > maxBytes) {
		c.store.Delete(c.order[0])
		c.order[0] = ""
		c.order = c.order[1:]
	}
	e := &entry{packed: packed}
	c.store.Set(key, e, ttl)
	c.bytes.Add(size)
	c.order = append(c.order, key)
	if len(c.order) > 2*c.store.ItemCount()+1024 {
		// Most of the order is of entries that expired: keep those still cached.
		c.order = slices.DeleteFunc(c.order, func(k string) bool { _, ok := c.store.Get(k); return !ok })
	}
	return e
}

// Bytes reports what the remembered tokens take, as CacheMaxBytes counts it.
func (c *cache) Bytes() int64 { return c.bytes.Load() }

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
	return string(h.mac.Sum(sum[:0])[:16])
}

// hasher is an HMAC with a buffer for the token it hashes.
type hasher struct {
	mac hash.Hash
	buf []byte
}

// maxPooledToken is the largest token buffer a pooled hasher keeps.
const maxPooledToken = 16 << 10

func (c *cache) observe(hit bool) {
	if c.opts.Observer != nil {
		c.opts.Observer.CacheLookup(hit)
	}
}
