package authn

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// countingChunks allocates chunks in the heap and counts those not yet freed.
type countingChunks struct{ live, freed int }

func (a *countingChunks) allocChunk(size int) ([]byte, error) {
	a.live++
	return make([]byte, size), nil
}

func (a *countingChunks) freeChunk([]byte) { a.live--; a.freed++ }

// testKey is a key whose first 8 bytes (what the index holds) differ for every n.
func testKey(n int) cacheKey {
	var k cacheKey
	binary.LittleEndian.PutUint64(k[:8], uint64(n))
	copy(k[8:], "test-key")
	return k
}

// testPacked is a packed identity of n bytes that names its key.
func testPacked(key int, n int) string {
	s := fmt.Sprintf("id-%d:", key)
	return s + strings.Repeat("x", n-len(s))
}

const far = int64(1) << 62 // an expiry never reached

func mustPut(t *testing.T, s *store, key, n int, b storeBounds) uint64 {
	t.Helper()
	pos, ok := s.put(testKey(key), testPacked(key, n), far, 0, b)
	if !ok {
		t.Fatalf("key %d (%d bytes) was not cached", key, n)
	}
	return pos
}

// cachedKeys lists the keys the store serves, checking that each serves its own identity.
func cachedKeys(t *testing.T, s *store, keys ...int) []int {
	t.Helper()
	var got []int
	for _, k := range keys {
		packed, _, found := s.get(testKey(k), 0)
		if found != lookupHit {
			continue
		}
		if !strings.HasPrefix(packed, fmt.Sprintf("id-%d:", k)) {
			t.Fatalf("key %d serves %q", k, packed)
		}
		got = append(got, k)
	}
	return got
}

// The entry bound is hard and evicts the oldest first; the byte bound counts the records'
// span, the index and nothing else, and evicts the oldest first too.
func TestStoreEvictsOldestWithinBothBounds(t *testing.T) {
	s := newStore(&countingChunks{}, 4096)
	b := storeBounds{maxEntries: 3}
	for k := range 5 {
		mustPut(t, s, k, 50, b)
		if n, _ := s.size(); n > 3 {
			t.Fatalf("%d entries after key %d; want at most 3", n, k)
		}
	}
	if got := cachedKeys(t, s, 0, 1, 2, 3, 4); fmt.Sprint(got) != "[2 3 4]" {
		t.Fatalf("cached %v, want the newest three [2 3 4]", got)
	}

	record := int64(recordHeader + keySize + 100 + indexEntryOverhead)
	b = storeBounds{maxBytes: 4*record + 10, reserved: 10}
	s = newStore(&countingChunks{}, 4096)
	for k := range 10 {
		mustPut(t, s, k, 100, b)
		n, bytes := s.size()
		if bytes+b.reserved > b.maxBytes {
			t.Fatalf("after key %d: %d bytes and %d reserved, beyond %d", k, bytes, b.reserved, b.maxBytes)
		}
		if want := int64(min(k+1, 4)) * record; bytes != want || n != min(k+1, 4) {
			t.Fatalf("after key %d: %d entries taking %d bytes, want %d taking %d", k, n, bytes, min(k+1, 4), want)
		}
	}
	if got := cachedKeys(t, s, 5, 6, 7, 8, 9); fmt.Sprint(got) != "[6 7 8 9]" {
		t.Fatalf("cached %v, want the newest four [6 7 8 9]", got)
	}
}

// A record larger than a chunk, or than the byte bound, is not cached, and evicts nothing.
func TestStoreRefusesWhatDoesNotFit(t *testing.T) {
	s := newStore(&countingChunks{}, 1024)
	b := storeBounds{maxEntries: 10, maxBytes: 900}
	mustPut(t, s, 1, 100, b)
	if _, ok := s.put(testKey(2), testPacked(2, 1024), far, 0, storeBounds{}); ok {
		t.Fatal("a record larger than a chunk was cached")
	}
	if _, ok := s.put(testKey(3), testPacked(3, 900), far, 0, b); ok {
		t.Fatal("a record larger than the byte bound was cached")
	}
	if got := cachedKeys(t, s, 1, 2, 3); fmt.Sprint(got) != "[1]" {
		t.Fatalf("cached %v; what did not fit must evict nothing", got)
	}
}

// Records wrap from chunk to chunk: a record never straddles two, the unused end of a chunk
// is counted until the tail leaves the chunk, and a chunk the tail leaves is freed.
func TestStoreChunkWrapAround(t *testing.T) {
	alloc := &countingChunks{}
	const chunkSize = 300
	s := newStore(alloc, chunkSize)
	b := storeBounds{maxEntries: 4}
	n := 80 - recordHeader - keySize // records of 80 bytes: three to a chunk, 60 left unused
	for k := range 50 {
		pos := mustPut(t, s, k, n, b)
		if off := int(pos & (maxChunkSize - 1)); off+80 > chunkSize {
			t.Fatalf("key %d at offset %d straddles the chunk's end", k, off)
		}
		if got := cachedKeys(t, s, k-3, k-2, k-1, k); len(got) != min(k+1, 4) {
			t.Fatalf("after key %d cached %v; want the newest four", k, got)
		}
		// The span: the records from the tail to the head, and the unused ends of the
		// chunks before the head's.
		chunks := len(s.log.chunks)
		want := int64(min(k+1, 4)*80 + (chunks-1)*60)
		if s.log.bytes != want {
			t.Fatalf("after key %d: span %d over %d chunks, want %d", k, s.log.bytes, chunks, want)
		}
		if alloc.live != chunks || chunks > 3 {
			t.Fatalf("after key %d: %d chunks allocated, %d in the log; want them equal and at most 3", k, alloc.live, chunks)
		}
	}
	if alloc.freed == 0 {
		t.Fatal("no chunk was freed")
	}
	s.release()
	if alloc.live != 0 {
		t.Fatalf("%d chunks left after release", alloc.live)
	}
	if _, ok := s.put(testKey(100), testPacked(100, n), far, 0, b); ok || alloc.live != 0 {
		t.Fatal("a released store cached a record")
	}
}

// A replaced record stays in the log until the tail reaches it; it then leaves without
// taking the entry's newer copy with it, and never counts against the entry bound.
func TestStoreReplacedRecordReachingTheTail(t *testing.T) {
	s := newStore(&countingChunks{}, 4096)
	b := storeBounds{maxEntries: 2}
	mustPut(t, s, 1, 50, b)
	mustPut(t, s, 2, 50, b)
	stale := testKey(1)
	old := s.index[stale.short()]
	newer := mustPut(t, s, 1, 60, b) // replaces key 1: the tail is now its stale copy
	if n, _ := s.size(); n != 2 || newer == old {
		t.Fatalf("%d entries after replacing one (position %d, was %d); want 2 and a new position", n, newer, old)
	}
	mustPut(t, s, 3, 50, b)
	if got := cachedKeys(t, s, 1, 2, 3); fmt.Sprint(got) != "[1 3]" {
		t.Fatalf("cached %v, want [1 3]: the stale copy of 1 and then 2 leave", got)
	}
	if s.index[stale.short()] != newer {
		t.Fatal("the stale copy took the newer one with it")
	}
	// The byte bound counts the stale copy while it is in the log.
	_, bytes := s.size()
	if want := int64(2*(recordHeader+keySize)+60+50) + 2*indexEntryOverhead; bytes != want {
		t.Fatalf("%d bytes with the newer copy of 1 and 3, want %d", bytes, want)
	}
}

// Two keys that share the 8 bytes the index holds take one slot: the newer replaces the
// older, and neither is ever served the other's identity.
func TestStoreKeysSharingTheirIndexedBytes(t *testing.T) {
	s := newStore(&countingChunks{}, 4096)
	b := storeBounds{maxEntries: 10}
	a, other := testKey(1), testKey(1)
	copy(other[8:], "other-ky")
	if _, ok := s.put(a, "identity of a", far, 0, b); !ok {
		t.Fatal("not cached")
	}
	if _, _, found := s.get(other, 0); found != lookupMiss {
		t.Fatalf("a key sharing the indexed bytes of a cached one: %v, want a miss", found)
	}
	if _, ok := s.put(other, "identity of other", far, 0, b); !ok {
		t.Fatal("not cached")
	}
	if packed, _, found := s.get(other, 0); found != lookupHit || packed != "identity of other" {
		t.Fatalf("the newer key: %v %q", found, packed)
	}
	if _, _, found := s.get(a, 0); found != lookupMiss {
		t.Fatalf("the replaced key: %v, want a miss", found)
	}
	if n, _ := s.size(); n != 1 {
		t.Fatalf("%d entries, want 1", n)
	}
}

// An expired record is not served; the tail drops expired records as new ones come.
func TestStoreExpiry(t *testing.T) {
	s := newStore(&countingChunks{}, 4096)
	b := storeBounds{maxEntries: 10}
	if _, ok := s.put(testKey(1), testPacked(1, 50), 100, 0, b); !ok {
		t.Fatal("not cached")
	}
	if _, ok := s.put(testKey(2), testPacked(2, 50), 300, 0, b); !ok {
		t.Fatal("not cached")
	}
	if _, _, found := s.get(testKey(1), 100); found != lookupHit {
		t.Fatal("a record is served until its expiry")
	}
	_, pos, found := s.get(testKey(1), 101)
	if found != lookupExpired {
		t.Fatalf("after its expiry: %v, want lookupExpired", found)
	}
	s.drop(testKey(1), pos)
	if n, _ := s.size(); n != 1 {
		t.Fatalf("%d entries after dropping the expired one, want 1", n)
	}
	// Key 2 expires at 300: a put at 301 drops it from the tail.
	if _, ok := s.put(testKey(3), testPacked(3, 50), 1000, 301, b); !ok {
		t.Fatal("not cached")
	}
	if n, bytes := s.size(); n != 1 || bytes != int64(recordHeader+keySize+50+indexEntryOverhead) {
		t.Fatalf("%d entries taking %d bytes; want key 3's alone", n, bytes)
	}
}

// Bounds change in place: a smaller bound evicts the oldest at once, a larger one lets the
// store grow again, into more chunks.
func TestStoreBoundsChangeInPlace(t *testing.T) {
	alloc := &countingChunks{}
	s := newStore(alloc, 1024)
	b := storeBounds{maxEntries: 20}
	for k := range 20 {
		mustPut(t, s, k, 200, b)
	}
	s.setBounds(storeBounds{maxEntries: 5}, 1024)
	if got := cachedKeys(t, s, 14, 15, 16, 17, 18, 19); fmt.Sprint(got) != "[15 16 17 18 19]" {
		t.Fatalf("cached %v after lowering the bound to 5", got)
	}
	_, bytes := s.size()
	s.setBounds(storeBounds{maxEntries: 5, maxBytes: bytes - 1}, 1024)
	if n, _ := s.size(); n != 4 {
		t.Fatalf("%d entries after lowering the byte bound below five's, want 4", n)
	}
	s.setBounds(storeBounds{maxEntries: 50}, 2048)
	for k := 20; k < 50; k++ {
		mustPut(t, s, k, 200, storeBounds{maxEntries: 50})
	}
	if n, _ := s.size(); n != 34 || len(s.log.chunks) < 3 {
		t.Fatalf("%d entries in %d chunks after raising the bound, want 34 in several", n, len(s.log.chunks))
	}
	if len(s.log.chunks[len(s.log.chunks)-1].mem) != 2048 {
		t.Fatal("new chunks do not take the new chunk size")
	}
}

type sizedMemo int64

func (m sizedMemo) Bytes() int64 { return int64(m) }

// A memo is counted with its entry and leaves with it: evicted, replaced, or kept for an
// entry that left meanwhile.
func TestStoreMemoLeavesWithItsEntry(t *testing.T) {
	s := newStore(&countingChunks{}, 4096)
	b := storeBounds{maxEntries: 2}
	p1 := mustPut(t, s, 1, 50, b)
	_, plain := s.size()
	s.keep(testKey(1), p1, sizedMemo(1000), b)
	if _, bytes := s.size(); bytes != plain+1000 || s.memo(testKey(1), p1) != sizedMemo(1000) {
		t.Fatalf("%d bytes with the memo, want %d; memo %v", bytes, plain+1000, s.memo(testKey(1), p1))
	}
	mustPut(t, s, 2, 50, b)
	mustPut(t, s, 3, 50, b) // evicts 1
	if len(s.memos) != 0 || s.memoBytes != 0 {
		t.Fatalf("memos %v (%d bytes) after their entry was evicted", s.memos, s.memoBytes)
	}
	s.keep(testKey(1), p1, sizedMemo(1000), b) // for the entry evicted meanwhile
	if len(s.memos) != 0 || s.memo(testKey(1), p1) != nil {
		t.Fatal("a memo was kept for an evicted entry")
	}
	p3 := s.index[testKey(3).short()]
	s.keep(testKey(3), p3, sizedMemo(500), b)
	mustPut(t, s, 3, 50, b) // replaced: the memo goes
	if s.memoBytes != 0 || s.memo(testKey(3), s.index[testKey(3).short()]) != nil {
		t.Fatalf("%d memo bytes after the entry was replaced", s.memoBytes)
	}
	// Beyond the byte bound a memo is not kept.
	_, bytes := s.size()
	s.keep(testKey(2), s.index[testKey(2).short()], sizedMemo(1000), storeBounds{maxBytes: bytes + 999})
	if s.memoBytes != 0 {
		t.Fatal("a memo beyond the byte bound was kept")
	}
}

// The store holds no Go pointer per entry: the index's keys and values and the chunks' bytes
// are pointer-free types, which the garbage collector allocates as "no scan" and never
// reads. (The chunk list holds a slice header per chunk, 64 at the default byte bound.)
func TestStoreHoldsNoPointerPerEntry(t *testing.T) {
	s := newStore(&countingChunks{}, 4096)
	index := reflect.TypeOf(s.index)
	for _, typ := range []reflect.Type{index.Key(), index.Elem(), reflect.TypeOf(chunk{}.mem).Elem()} {
		if hasPointers(typ) {
			t.Errorf("%v holds pointers", typ)
		}
	}
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	default:
		return true
	}
}

// chunkSizeFor gives a 64th of the byte bound, within 64 KiB and 1 MiB.
func TestChunkSizeFor(t *testing.T) {
	for _, tc := range []struct {
		maxBytes int64
		want     int
	}{{0, 1 << 20}, {64 << 10, 64 << 10}, {8 << 20, 128 << 10}, {64 << 20, 1 << 20}, {1 << 30, 1 << 20}} {
		if got := chunkSizeFor(tc.maxBytes); got != tc.want {
			t.Errorf("chunkSizeFor(%d) = %d, want %d", tc.maxBytes, got, tc.want)
		}
	}
}

// The allocator of this build (mmap on Linux and macOS, the heap elsewhere and under -race)
// gives zeroed, writable chunks of the size asked and takes them back.
func TestChunkAllocator(t *testing.T) {
	a := newChunkAllocator()
	mem, err := a.allocChunk(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(mem) != 64<<10 || mem[0] != 0 || mem[len(mem)-1] != 0 {
		t.Fatalf("a chunk of %d bytes, want %d zeroed", len(mem), 64<<10)
	}
	mem[0], mem[len(mem)-1] = 1, 2
	a.freeChunk(mem)
}

// An entry expires on the cache's clock (Options.Now), at min(TTL, exp).
func TestCacheExpiresOnTheInjectedClock(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	v := &expiringVerifier{expiry: now.Add(time.Hour)}
	auth, err := New(map[string]Verifier{"https://a": v}, nil,
		Options{CacheTTL: time.Minute, CacheMaxEntries: 10, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok := testJWT("https://a")
	for i, step := range []struct {
		at     time.Duration
		cached bool
	}{{0, false}, {time.Minute, true}, {time.Minute + time.Second, false}, {time.Minute + 2*time.Second, true}} {
		now = time.Unix(1_000_000, 0).Add(step.at)
		res, err := auth.Authenticate(context.Background(), tok)
		if err != nil || res.Cached != step.cached {
			t.Fatalf("request %d at +%v: cached=%v, %v; want cached=%v", i, step.at, res.Cached, err, step.cached)
		}
	}
	if auth.CacheEntries() != 1 {
		t.Fatalf("%d entries; the expired one is replaced, not added", auth.CacheEntries())
	}
}

type expiringVerifier struct{ expiry time.Time }

func (v *expiringVerifier) Verify(_ context.Context, tok *Unverified) (*Identity, error) {
	return &Identity{Issuer: tok.Issuer, Subject: "s", Expiry: v.expiry, User: User{Name: "u"}}, nil
}

func testJWT(iss string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","kid":"k"}`)) + "." + enc.EncodeToString([]byte(`{"iss":"`+iss+`"}`)) + ".c2ln"
}
