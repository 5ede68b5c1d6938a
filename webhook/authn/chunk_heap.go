//go:build !((linux || darwin) && !race)

package authn

// heapChunks allocates the cache's chunks in the Go heap, where mmap is not used (other
// systems, and builds with the race detector). A []byte holds no pointer: the collector
// still never scans the chunks, but counts them in the heap and its headroom.
type heapChunks struct{}

// chunksOffHeap tells whether the chunks are outside the Go heap.
const chunksOffHeap = false

func newChunkAllocator() chunkAllocator { return heapChunks{} }

func (heapChunks) allocChunk(size int) ([]byte, error) { return make([]byte, size), nil }

func (heapChunks) freeChunk([]byte) {}
