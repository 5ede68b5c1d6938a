package authn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
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
//
// The entries are in a store that holds no Go pointer per entry (store.go), its records
// outside the Go heap where mmap is used (chunk_mmap.go).
type cache struct {
	limits  atomic.Pointer[cacheLimits]
	store   *store
	shared  *interned // the strings identities share: group names, extra values
	hashers sync.Pool // of *hasher, keyed for this process

	slotsMu sync.Mutex
	slots   atomic.Pointer[slotTable]
}

// cacheKey is a cache key's bytes, which hold no pointer: the index costs the garbage
// collector nothing to scan.
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
	c := &cache{
		store:  newStore(newChunkAllocator(), chunkSizeFor(opts.CacheMaxBytes)),
		shared: newInterned(internBudget(opts.CacheMaxBytes)),
	}
	c.setLimits(opts)
	c.slots.Store(&slotTable{})
	c.hashers.New = func() any { return &hasher{mac: hmac.New(sha256.New, secret)} }
	// The chunks outside the heap are returned when the cache is no longer reachable: a
	// reconfiguration that shrinks the TTL makes a new cache while requests may still be
	// running on the old one, so it cannot be released there.
	runtime.AddCleanup(c, (*store).release, c.store)
	return c, nil
}

func (c *cache) setLimits(opts Options) {
	lim := &cacheLimits{ttl: opts.CacheTTL, maxEntries: opts.CacheMaxEntries, maxBytes: opts.CacheMaxBytes, now: opts.Now}
	c.limits.Store(lim)
	c.store.setBounds(c.bounds(lim), chunkSizeFor(opts.CacheMaxBytes))
}

// bounds are lim's bounds for the store, which shares the byte bound with the shared strings.
func (c *cache) bounds(lim *cacheLimits) storeBounds {
	return storeBounds{maxEntries: lim.maxEntries, maxBytes: lim.maxBytes, reserved: c.shared.bytes.Load()}
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

// entryRef names a token's cache entry as it was found or made: its key and the position of
// its record, which no other record ever takes. A memo is kept with it only while the entry
// is still that record (not evicted, expired or replaced). The zero entryRef is no entry.
type entryRef struct {
	key cacheKey
	pos uint64
}

func (e entryRef) cached() bool { return e.pos != 0 }

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

// verified is a verified token's identity and its cache entry (none when it was not cached).
type verified struct {
	id    *Identity
	entry entryRef
}

// verifyToken returns the identity of raw from the cache, or from the generation's router,
// its cache entry (none when it could not be cached), and whether it came from the cache.
func (c *cache) verifyToken(ctx context.Context, g *generation, raw string) (*Identity, entryRef, bool, error) {
	key := c.key(raw)
	packed, pos, found := c.store.get(key, c.limits.Load().now().UnixNano())
	switch found {
	case lookupHit:
		if g.serves(packed) {
			if id, err := unpackIdentity(packed, g.slotURLs, c.shared.list()); err == nil {
				c.observe(g, true)
				return id.withPayload(raw), entryRef{key: key, pos: pos}, true, nil
			}
			c.store.drop(key, pos) // never expected: verify the token again
		}
		// Else verified by an issuer object this generation no longer routes to (removed or
		// reconfigured): verified again, and replaced, below.
	case lookupExpired:
		c.store.drop(key, pos)
	}
	c.observe(g, false)
	// The work is detached from the first caller's cancellation so that its peers are not
	// failed by it. Each generation has its own group: a request never shares the
	// verification of a previous configuration.
	v, err, _ := g.flight.Do(string(key[:]), func() (any, error) {
		id, err := g.router.VerifyToken(context.WithoutCancel(ctx), raw)
		if err != nil {
			return nil, err
		}
		return verified{id: id, entry: c.remember(g, key, id)}, nil
	})
	if err != nil {
		return nil, entryRef{}, false, err
	}
	vf := v.(verified)
	return vf.id, vf.entry, false, nil
}

// memo returns the memo kept with e, nil if none.
func (c *cache) memo(e entryRef) Memo { return c.store.memo(e.key, e.pos) }

// keep replaces the memo of e with m (nil: none), counting it against CacheMaxBytes: a memo
// that does not fit is not kept, nor one whose entry left the cache meanwhile.
func (c *cache) keep(e entryRef, m Memo) {
	c.store.keep(e.key, e.pos, m, c.bounds(c.limits.Load()))
}

// CacheEntryOverhead is what one cache entry takes beside its packed identity: its record's
// header and key in the log, and its slot in the index (an estimate of a Go map's slot as it
// grows; BenchmarkCacheAtScale measures the whole per identity, docs/performance.md).
const CacheEntryOverhead = recordHeader + keySize + indexEntryOverhead

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
// entry (none when it is not cached). The bounds on entries and bytes hold under any flood of
// valid tokens: the oldest entries are evicted to make room, and an identity larger than a
// chunk of the store (chunkSizeFor) or than the byte bound is not cached.
func (c *cache) remember(g *generation, key cacheKey, id *Identity) entryRef {
	lim := c.limits.Load()
	now := lim.now()
	ttl := min(lim.ttl, id.Expiry.Sub(now))
	if ttl <= 0 {
		return entryRef{}
	}
	i, found := g.slotOf[id.Issuer]
	if !found {
		return entryRef{}
	}
	packed := id.pack("", i, c.shared)
	pos, ok := c.store.put(key, packed, now.Add(ttl).UnixNano(), now.UnixNano(), c.bounds(lim))
	if !ok {
		return entryRef{}
	}
	return entryRef{key: key, pos: pos}
}

// entries reports how many tokens the cache remembers.
func (c *cache) entries() int {
	n, _ := c.store.size()
	return n
}

// Bytes reports what the remembered tokens take, as CacheMaxBytes counts it: the store (its
// records' span, index and memos) and the table of the strings they share.
func (c *cache) Bytes() int64 {
	_, b := c.store.size()
	return b + c.shared.bytes.Load()
}

// cacheKey is the HMAC-SHA256 of the token under a key of this process, truncated to 128 bits
// (as HMAC-SHA-256-128 is, RFC 4868): the cache never holds a token, nor anything that would
// let one be checked offline, and two tokens collide with a chance of 2^-128.
func (c *cache) key(raw string) cacheKey {
	h := c.hashers.Get().(*hasher)
	defer c.hashers.Put(h)
	h.mac.Reset()
	h.buf = append(h.buf[:0], raw...) // the hash takes bytes: copied here, not allocated per token
	_, _ = h.mac.Write(h.buf)
	if cap(h.buf) > maxPooledToken {
		h.buf = nil
	}
	var sum [sha256.Size]byte
	return cacheKey(h.mac.Sum(sum[:0])[:keySize])
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
