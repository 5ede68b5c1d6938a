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
	shared  *interned // the strings identities share: group names, extra values
	hashers sync.Pool // of *hasher, keyed for this process
	flight  singleflight.Group
	bound   sync.Mutex   // makes CacheMaxEntries and CacheMaxBytes hard bounds
	order   []cacheKey   // oldest first (some may be gone already); under bound
	bytes   atomic.Int64 // what the cached entries take, by entrySize
}

// cacheKey is a cache key's bytes, which hold no pointer: the eviction order costs the
// garbage collector nothing and keeps no evicted entry alive.
type cacheKey [keySize]byte

const keySize = 16

func newCache(next TokenVerifier, names []string, opts Options) (*cache, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate cache key: %w", err)
	}
	c := &cache{next: next, names: names, opts: opts, store: gocache.New(opts.CacheTTL, time.Minute), shared: newInterned(internBudget(opts.CacheMaxBytes))}
	c.store.OnEvicted(func(_ string, v any) { c.bytes.Add(-entrySize(v.(string))) })
	c.hashers.New = func() any { return &hasher{mac: hmac.New(sha256.New, secret)} }
	return c, nil
}

// verifyToken returns the identity of raw from the cache, or from the verifier it wraps,
// and whether it came from the cache.
func (c *cache) verifyToken(ctx context.Context, raw string) (*Identity, bool, error) {
	key := c.key(raw)
	if v, ok := c.store.Get(key); ok {
		if id, err := unpackIdentity(v.(string), c.names, c.shared.list()); err == nil {
			c.observe(true)
			return id.withPayload(raw), true, nil
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
		c.remember(key, id)
		return id, nil
	})
	if err != nil {
		return nil, false, err
	}
	return v.(*Identity), false, nil
}

// CacheEntryOverhead is what one cache entry takes beside its packed identity: its key, the
// cache's item and map slot, and its place in the eviction order (an estimate, measured in
// docs/performance.md).
const CacheEntryOverhead = 96

func entrySize(packed string) int64 { return int64(len(packed)) + CacheEntryOverhead }

// internBudget is the share of the byte bound the table of shared strings may take: an
// eighth, or 8 MiB when the cache has no byte bound.
func internBudget(maxBytes int64) int64 {
	if maxBytes <= 0 {
		return 8 << 20
	}
	return maxBytes / 8
}

// remember caches id, packed and without its claim set, until min(TTL, exp). The bounds on
// entries and bytes hold under any flood of valid tokens: the oldest entries are evicted to
// make room, and an identity larger than the whole byte bound is not cached.
func (c *cache) remember(key string, id *Identity) {
	ttl := min(c.opts.CacheTTL, id.Expiry.Sub(c.opts.Now()))
	if ttl <= 0 {
		return
	}
	i, found := slices.BinarySearch(c.names, id.Issuer)
	if !found {
		return
	}
	// The key and the identity share one allocation: the key is the entry's first bytes.
	entry := id.pack(key, i, c.shared)
	key, packed := entry[:keySize], entry[keySize:]
	size := entrySize(packed)
	maxBytes := c.opts.CacheMaxBytes - c.shared.bytes.Load()
	if c.opts.CacheMaxBytes > 0 && size > maxBytes {
		return
	}
	c.bound.Lock()
	defer c.bound.Unlock()
	c.store.Delete(key) // an expired entry not yet swept: its bytes are counted once
	for len(c.order) > 0 && (c.opts.CacheMaxEntries > 0 && c.store.ItemCount() >= c.opts.CacheMaxEntries ||
		c.opts.CacheMaxBytes > 0 && c.bytes.Load()+size > maxBytes) {
		c.store.Delete(string(c.order[0][:]))
		c.order = c.order[1:]
	}
	c.store.Set(key, packed, ttl)
	c.bytes.Add(size)
	c.order = append(c.order, cacheKey([]byte(key)))
	if len(c.order) > 2*c.store.ItemCount()+1024 {
		// Most of the order is of entries that expired: keep those still cached.
		c.order = slices.DeleteFunc(c.order, func(k cacheKey) bool { _, ok := c.store.Get(string(k[:])); return !ok })
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

func (c *cache) observe(hit bool) {
	if c.opts.Observer != nil {
		c.opts.Observer.CacheLookup(hit)
	}
}
