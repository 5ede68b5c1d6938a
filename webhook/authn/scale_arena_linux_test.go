//go:build linux

package authn_test

import (
	"syscall"
	"testing"
)

// arenaMemory is memory outside the Go heap for the benchmark's tokens: the collector neither
// marks them nor grows the heap by their size, so the RSS the benchmark reads grows with the
// cache alone, as a server's does.
func arenaMemory(b *testing.B, size int) []byte {
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		b.Fatalf("map the tokens' memory: %v", err)
	}
	b.Cleanup(func() { _ = syscall.Munmap(mem) })
	return mem
}
