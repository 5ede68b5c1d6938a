package authn

import (
	"strings"
	"sync"
	"sync/atomic"
)

// interned holds, once for the whole cache, the strings that repeat across identities:
// group names and extra values, which thousands of users share. A cached identity refers to
// them by number. The table only grows, within its byte budget: once that is spent, new
// strings are packed into each identity as before, so the budget bounds the table whatever
// the tokens carry.
type interned struct {
	mu     sync.Mutex
	index  map[string]uint32
	strs   atomic.Pointer[[]string] // append-only: a reader's snapshot stays valid
	bytes  atomic.Int64
	budget int64
}

// Interning is for short strings: a group GUID, a team name. A long one is rarely shared.
const (
	maxInternedLen = 128
	// internedOverhead is what a table entry takes beside its bytes: its slot in the index
	// map and in the list, and its allocation.
	internedOverhead = 64
)

func newInterned(budget int64) *interned {
	t := &interned{index: map[string]uint32{}, budget: budget}
	t.strs.Store(&[]string{})
	return t
}

// id returns the number of s, adding s to the table when there is room.
func (t *interned) id(s string) (uint32, bool) {
	if len(s) > maxInternedLen {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.index[s]; ok {
		return i, true
	}
	size := int64(len(s)) + internedOverhead
	if t.bytes.Load()+size > t.budget {
		return 0, false
	}
	s = strings.Clone(s) // s may share the bytes of a token or of a packed entry
	list := append(*t.strs.Load(), s)
	i := uint32(len(list) - 1)
	t.index[s] = i
	t.strs.Store(&list)
	t.bytes.Add(size)
	return i, true
}

// list is every interned string, by number; a packed identity stored after a string was
// interned is read with a list that has it.
func (t *interned) list() []string { return *t.strs.Load() }
