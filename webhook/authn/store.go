package authn

import (
	"encoding/binary"
	"sync"
)

// store holds the cache's entries without a Go pointer per entry: an index from key to the
// position of the entry's record, in a map whose keys and values hold no pointer (the
// collector never scans it), and the records in a log of chunks (recordLog). The oldest
// entries are evicted by advancing the log's tail: a record there leaves the index only if
// the index still names it (a newer copy may have replaced it). Both bounds stay hard: the
// entry bound is the index's size, the byte bound covers the log's span, the index and the
// memos. An expired entry is not served; it is deleted when it is next looked up or when the
// tail reaches it, instead of by a janitor walking every entry under a lock.
//
// The index holds a key's first 8 bytes (indexKey), the record all 16: a map slot of 16 bytes
// instead of 24, a third less index at a million identities. Two cached tokens whose keys
// share those 8 bytes (a chance of 2^-64 for a pair, ~3×10^-8 among a million tokens, and no
// one can aim for it without the process's HMAC key) take one slot, the newer replacing the
// older like a second copy of the same token; a lookup compares the whole key with the
// record's, so that neither token is ever served the other's identity.
//
// Hits take the read lock only, so they run side by side; a miss that caches, a memo and an
// eviction take the write lock, briefly. One lock rather than shards: the cache evicts the
// oldest entry of all, and shards would each evict their own oldest within a share of the
// bounds.
type store struct {
	mu    sync.RWMutex
	index map[indexKey]uint64
	log   recordLog
	// memos are the MemoMapper results kept with entries (Go values, so not in the log),
	// made when the first memo is kept: a mapping without expressions keeps none.
	memos     map[indexKey]*memoBox
	memoBytes int64
	// released is set once the chunks are returned (the cache is unreachable): nothing is
	// cached after that, so that no chunk is allocated that would never be returned.
	released bool
}

// indexKey is the share of a cache key the index holds.
type indexKey uint64

func (k cacheKey) short() indexKey { return indexKey(binary.LittleEndian.Uint64(k[:8])) }

// indexEntryOverhead is what an entry takes in the index: a 16-byte slot (key and position)
// and its control byte, in a table at most 7/8 full that doubles as it grows, so 19 to 39
// bytes.
const indexEntryOverhead = 40

// lookup is the result of store.get.
type lookup int

const (
	lookupMiss lookup = iota
	lookupHit
	lookupExpired
)

func newStore(alloc chunkAllocator, chunkSize int) *store {
	return &store{index: map[indexKey]uint64{}, log: recordLog{alloc: alloc, chunkSize: chunkSize, first: 1}}
}

// get returns the packed identity of key (a copy: the chunk may be reused once the lock is
// released) and its record's position, unless it expired before now (Unix nanoseconds).
func (s *store) get(key cacheKey, now int64) (string, uint64, lookup) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pos, ok := s.index[key.short()]
	if !ok {
		return "", 0, lookupMiss
	}
	recorded, packed, expiry := s.log.record(pos)
	if recorded != key {
		return "", 0, lookupMiss // another token whose key starts alike: it is replaced
	}
	if now > expiry {
		return "", pos, lookupExpired
	}
	return string(packed), pos, lookupHit
}

// drop deletes the entry of key if its record is still the one at pos.
func (s *store) drop(key cacheKey, pos uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := key.short(); s.index[k] == pos {
		s.remove(k)
	}
}

// remove deletes the entry of key and its memo; its record stays in the log, no longer
// named by the index, until the tail passes it. Callers hold mu.
func (s *store) remove(key indexKey) {
	delete(s.index, key)
	if m, ok := s.memos[key]; ok {
		s.memoBytes -= m.bytes
		delete(s.memos, key)
	}
}

// storeBounds are the bounds a store keeps: 0 means none. reserved is what the byte bound
// must also hold beside the store (the cache's shared strings).
type storeBounds struct {
	maxEntries int
	maxBytes   int64
	reserved   int64
}

// put caches packed under key until expiry, evicting the records that expired by now and
// then the oldest entries until it fits the bounds, and returns its record's position;
// false when it cannot be cached (larger than a chunk or than the bounds allow, or no memory
// for a chunk).
func (s *store) put(key cacheKey, packed string, expiry, now int64, b storeBounds) (uint64, bool) {
	n := recordHeader + keySize + len(packed)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released || !s.log.fits(n) || b.maxBytes > 0 && int64(n)+indexEntryOverhead+b.reserved > b.maxBytes {
		return 0, false // checked first: it must not evict every entry and then fail
	}
	k := key.short()
	if _, ok := s.index[k]; ok {
		s.remove(k) // replaced: its bytes are counted once
	}
	s.dropExpired(now)
	if !s.evict(b, n) {
		return 0, false
	}
	pos, err := s.log.append(key, packed, expiry)
	if err != nil {
		return 0, false // no memory for a chunk: the token is verified again next time
	}
	s.index[k] = pos
	return pos, true
}

// setBounds applies new bounds in place: the oldest entries are evicted until the cache fits
// them, and chunks started from now on have chunkSize bytes.
func (s *store) setBounds(b storeBounds, chunkSize int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.chunkSize = chunkSize
	before := len(s.index)
	s.evict(b, 0)
	if len(s.index) < before/2 {
		// A Go map keeps its size once grown: a much smaller bound gets a smaller index.
		index := make(map[indexKey]uint64, len(s.index))
		for k, v := range s.index {
			index[k] = v
		}
		s.index = index
	}
}

// evict removes the oldest entries until one more record of n bytes fits the bounds (n = 0:
// until the entries there are fit them); false when the log is empty and it still does not.
// Callers hold mu.
func (s *store) evict(b storeBounds, n int) bool {
	for {
		entries, bytes := len(s.index), s.bytes()+b.reserved
		if n > 0 {
			entries++
			bytes += s.log.cost(n) + indexEntryOverhead
		}
		if (b.maxEntries <= 0 || entries <= b.maxEntries) && (b.maxBytes <= 0 || bytes <= b.maxBytes) {
			return true
		}
		if !s.popOldest() {
			return false
		}
	}
}

// popOldest removes the record at the tail, and its entry if the index still names it;
// false when the log is empty. Callers hold mu.
func (s *store) popOldest() bool {
	pos, ok := s.log.oldest()
	if !ok {
		return false
	}
	key, _, _ := s.log.record(pos)
	if k := key.short(); s.index[k] == pos {
		s.remove(k)
	}
	s.log.pop()
	return true
}

// dropExpired advances the tail past records that are no longer named or expired before
// now: what expired gives its memory back as new entries come, without a sweep. Callers
// hold mu.
func (s *store) dropExpired(now int64) {
	for {
		pos, ok := s.log.oldest()
		if !ok {
			return
		}
		key, _, expiry := s.log.record(pos)
		if s.index[key.short()] == pos && now <= expiry {
			return
		}
		s.popOldest()
	}
}

// memo returns the memo kept with the entry of key, if its record is still the one at pos.
func (s *store) memo(key cacheKey, pos uint64) Memo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k := key.short()
	if s.index[k] != pos {
		return nil
	}
	return s.memos[k].memo()
}

// keep replaces the memo of the entry of key with m (nil: none), if its record is still the
// one at pos, counting it against the byte bound: a memo that does not fit is not kept.
func (s *store) keep(key cacheKey, pos uint64, m Memo, b storeBounds) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key.short()
	if s.index[k] != pos {
		return // evicted or replaced meanwhile: the memo leaves with it
	}
	var box *memoBox
	if m != nil {
		box = &memoBox{m: m, bytes: m.Bytes()}
		if b.maxBytes > 0 && s.bytes()+b.reserved+box.bytes > b.maxBytes {
			box = nil
		}
	}
	if old, ok := s.memos[k]; ok {
		s.memoBytes -= old.bytes
		delete(s.memos, k)
	}
	if box != nil {
		if s.memos == nil {
			s.memos = map[indexKey]*memoBox{}
		}
		s.memos[k] = box
		s.memoBytes += box.bytes
	}
}

// bytes is what the store takes: the log's span, the index and the memos. Callers hold mu.
func (s *store) bytes() int64 {
	return s.log.bytes + int64(len(s.index))*indexEntryOverhead + s.memoBytes
}

// size reports the entries and the bytes the store takes.
func (s *store) size() (entries int, bytes int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.index), s.bytes()
}

// release returns the log's chunks; the store is not used again.
func (s *store) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released = true
	s.log.release()
	clear(s.index)
	clear(s.memos)
	s.memoBytes = 0
}
