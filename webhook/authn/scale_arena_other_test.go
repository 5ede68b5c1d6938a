//go:build !linux

package authn_test

import "testing"

// arenaMemory is the benchmark tokens' memory; off Linux, where the benchmark reads no RSS,
// in the Go heap.
func arenaMemory(_ *testing.B, size int) []byte { return make([]byte, size) }
