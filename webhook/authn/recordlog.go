package authn

import (
	"encoding/binary"
	"fmt"
)

// recordLog keeps the cache's records, oldest first, in chunks of bytes that hold no Go
// pointer and, on Linux and macOS, live outside the Go heap (chunk_mmap.go): a million cached
// identities cost the garbage collector nothing to scan and are not doubled by its headroom.
// Records are appended at the head; the oldest leaves at the tail, which is how the cache
// evicts (oldest first). A record never straddles two chunks: when it does not fit in what is
// left of the head's chunk, that rest is left unused and a new chunk is started.
//
// A record is its header (its length and expiry), the cache key, and the packed identity.
// Its position is the chunk's sequence number and its offset in it (positionOf); sequence
// numbers only grow, so a position never names two records.
//
// recordLog is not safe for concurrent use: the store's lock guards it.
type recordLog struct {
	chunks []chunk // the tail's chunk first, the head's last; an empty log keeps one at most
	first  uint64  // sequence number of chunks[0]
	tail   int     // offset of the oldest record in chunks[0]
	// bytes is the log's span: every byte from the tail to the head, counting the unused
	// ends of the chunks between them. It is what the log holds on to.
	bytes int64
	// chunkSize is the size of the chunks started from now on (setLimits may change it).
	chunkSize int
	alloc     chunkAllocator
}

// chunk is one allocation of the log; end is where its next record goes (the head's chunk) or
// where its records stop (any other chunk).
type chunk struct {
	mem []byte
	end int
}

// chunkAllocator gets and returns the chunks' memory: mmap, or the Go heap.
type chunkAllocator interface {
	allocChunk(size int) ([]byte, error)
	freeChunk(mem []byte)
}

// A record's header: its length (header included) and its expiry in Unix nanoseconds, on
// the cache's clock (Options.Now).
const (
	recordHeader = 4 + 8
	// offsetBits is the share of a position that is the offset in its chunk: chunks are at
	// most 16 MiB, and 2^40 chunks are never used up.
	offsetBits    = 24
	maxChunkSize  = 1 << offsetBits
	chunkSizeMax  = 1 << 20  // 1 MiB: what a large byte bound's chunks take
	chunkSizeMin  = 64 << 10 // 64 KiB: the chunk of a small byte bound
	chunkFraction = 64       // of the byte bound, one chunk
)

// chunkSizeFor is the chunk size for a byte bound: a 64th of it between 64 KiB and 1 MiB, so
// that the chunk the head is filling and the one the tail is emptying, which the log holds
// whole beside its span, stay a small share of the bound (1 MiB at the default 64 MiB).
// Without a byte bound, 1 MiB. An identity whose record is larger than a chunk is not cached.
func chunkSizeFor(maxBytes int64) int {
	if maxBytes <= 0 {
		return chunkSizeMax
	}
	size := (maxBytes/chunkFraction + chunkSizeMin - 1) / chunkSizeMin * chunkSizeMin
	return int(min(max(size, chunkSizeMin), chunkSizeMax))
}

func positionOf(seq uint64, off int) uint64 { return seq<<offsetBits | uint64(off) }

func (l *recordLog) empty() bool {
	return len(l.chunks) == 0 || len(l.chunks) == 1 && l.tail == l.chunks[0].end
}

// cost is what appending a record of n bytes adds to the log's span: n, plus the unused
// rest of the head's chunk when the record does not fit there. An empty log starts afresh.
func (l *recordLog) cost(n int) int64 {
	if l.empty() {
		return int64(n)
	}
	head := &l.chunks[len(l.chunks)-1]
	if head.end+n <= len(head.mem) {
		return int64(n)
	}
	return int64(n + len(head.mem) - head.end)
}

// fits reports whether a record of n bytes can be appended at all.
func (l *recordLog) fits(n int) bool { return n <= l.chunkSize && n <= maxChunkSize }

// append writes a record of key and packed, expiring at expiry, at the head and returns its
// position. Callers check fits first and make room for cost.
func (l *recordLog) append(key cacheKey, packed string, expiry int64) (uint64, error) {
	n := recordHeader + keySize + len(packed)
	if l.empty() {
		l.reset()
	}
	if len(l.chunks) == 0 || l.chunks[len(l.chunks)-1].end+n > len(l.chunks[len(l.chunks)-1].mem) {
		mem, err := l.alloc.allocChunk(l.chunkSize)
		if err != nil {
			return 0, fmt.Errorf("allocate a cache chunk of %d bytes: %w", l.chunkSize, err)
		}
		if len(l.chunks) > 0 {
			head := l.chunks[len(l.chunks)-1]
			l.bytes += int64(len(head.mem) - head.end) // its rest is left unused
		}
		l.chunks = append(l.chunks, chunk{mem: mem})
	}
	seq := l.first + uint64(len(l.chunks)-1)
	head := &l.chunks[len(l.chunks)-1]
	off := head.end
	rec := head.mem[off : off+n]
	binary.LittleEndian.PutUint32(rec[0:4], uint32(n))
	binary.LittleEndian.PutUint64(rec[4:12], uint64(expiry))
	copy(rec[recordHeader:], key[:])
	copy(rec[recordHeader+keySize:], packed)
	head.end += n
	l.bytes += int64(n)
	return positionOf(seq, off), nil
}

// record returns the record at pos: its key, its packed identity (bytes of the chunk, valid
// while the caller holds the store's lock) and its expiry.
func (l *recordLog) record(pos uint64) (key cacheKey, packed []byte, expiry int64) {
	c := l.chunks[pos>>offsetBits-l.first]
	off := int(pos & (maxChunkSize - 1))
	n := int(binary.LittleEndian.Uint32(c.mem[off:]))
	rec := c.mem[off : off+n]
	copy(key[:], rec[recordHeader:])
	return key, rec[recordHeader+keySize:], int64(binary.LittleEndian.Uint64(rec[4:12]))
}

// oldest returns the position of the record at the tail; false when the log is empty.
func (l *recordLog) oldest() (uint64, bool) {
	if l.empty() {
		return 0, false
	}
	return positionOf(l.first, l.tail), true
}

// pop removes the record at the tail, and the tail's chunk when it has no record left.
func (l *recordLog) pop() {
	c := &l.chunks[0]
	n := int(binary.LittleEndian.Uint32(c.mem[l.tail:]))
	l.tail += n
	l.bytes -= int64(n)
	if l.tail == c.end && len(l.chunks) > 1 {
		l.bytes -= int64(len(c.mem) - c.end)
		l.alloc.freeChunk(c.mem)
		l.chunks[0] = chunk{}
		l.chunks = l.chunks[1:]
		l.first++
		l.tail = 0
	}
}

// reset empties the log. The head's chunk is kept for the next records when it has the
// current chunk size; sequence numbers go on, so that no old position names a new record.
func (l *recordLog) reset() {
	keep := len(l.chunks) > 0 && len(l.chunks[len(l.chunks)-1].mem) == l.chunkSize
	for i, c := range l.chunks {
		if !keep || i < len(l.chunks)-1 {
			l.alloc.freeChunk(c.mem)
		}
	}
	l.first += uint64(len(l.chunks)) // the kept chunk too takes a new number
	if keep {
		last := l.chunks[len(l.chunks)-1].mem
		clear(l.chunks)
		l.chunks = append(l.chunks[:0], chunk{mem: last})
	} else {
		clear(l.chunks)
		l.chunks = l.chunks[:0]
	}
	l.tail, l.bytes = 0, 0
}

// release returns every chunk: the log is no longer used.
func (l *recordLog) release() {
	for _, c := range l.chunks {
		l.alloc.freeChunk(c.mem)
	}
	l.chunks, l.tail, l.bytes = nil, 0, 0
}

// mapped is what the log's chunks take, used or not.
func (l *recordLog) mapped() int64 {
	var n int64
	for _, c := range l.chunks {
		n += int64(len(c.mem))
	}
	return n
}
