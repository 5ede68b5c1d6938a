//go:build (linux || darwin) && !race

package authn

import "syscall"

// offHeapChunks allocates the cache's chunks with an anonymous private mmap, outside the Go
// heap: the kernel counts their pages once, when they are first written, and the garbage
// collector neither scans them nor lets the heap grow by their size before it collects.
// cache.maxBytes is then memory beside GOMEMLIMIT, not within it (docs/install.md).
//
// Not under the race detector, which sees no memory outside the Go heap: there the chunks
// come from the heap (chunk_heap.go), so that -race checks every access to them.
type offHeapChunks struct{}

// chunksOffHeap tells whether the chunks are outside the Go heap.
const chunksOffHeap = true

func newChunkAllocator() chunkAllocator { return offHeapChunks{} }

func (offHeapChunks) allocChunk(size int) ([]byte, error) {
	return syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

// freeChunk returns the pages to the kernel. Nothing refers to them any more: a record's
// bytes are only read under the store's lock, and copied out before it is released.
func (offHeapChunks) freeChunk(mem []byte) { _ = syscall.Munmap(mem) }
