package authn

// CacheOffHeap reports the bytes of the cache's chunks when they are outside the Go heap (0
// otherwise), for BenchmarkCacheAtScale, which counts them with the live heap.
func CacheOffHeap(a *Authenticator) int64 {
	g := a.gen.Load()
	if g.cache == nil || !chunksOffHeap {
		return 0
	}
	s := g.cache.store
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.log.mapped()
}
