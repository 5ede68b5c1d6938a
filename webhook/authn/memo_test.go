package authn_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// memoMapper is a MemoMapper under a version of its own: it reuses a memo of the same
// version, and counts what it maps and what it reuses.
type memoMapper struct {
	version        atomic.Int64
	memoBytes      int64 // 0: keep no memo
	mapped, reused atomic.Int64
}

type fakeMemo struct {
	version int64
	bytes   int64
	user    authn.User
}

func (m *fakeMemo) Bytes() int64 { return m.bytes }

func (m *memoMapper) Map(_ context.Context, id *authn.Identity) (authn.User, error) {
	m.mapped.Add(1)
	return id.User, nil
}

func (m *memoMapper) MapMemo(ctx context.Context, id *authn.Identity, prev authn.Memo) (authn.User, authn.Memo, error) {
	v := m.version.Load()
	if p, ok := prev.(*fakeMemo); ok && p.version == v {
		m.reused.Add(1)
		return p.user, p, nil
	}
	u, err := m.Map(ctx, id)
	if m.memoBytes == 0 {
		return u, nil, err
	}
	return u, &fakeMemo{version: v, bytes: m.memoBytes, user: u}, err
}

func newMemoAuth(t *testing.T, mapper authn.Mapper, opts authn.Options) *authn.Authenticator {
	t.Helper()
	v := &countingVerifier{expiry: time.Now().Add(time.Hour)}
	opts.CacheTTL = time.Minute
	a, err := authn.New(map[string]authn.Verifier{"https://a": v}, mapper, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A cache hit hands the mapper the memo it returned for the same token; the memo is counted
// in the cache's bytes and leaves with its entry.
func TestMemoIsKeptWithTheCacheEntry(t *testing.T) {
	ctx := context.Background()
	// The bytes of the entries alone, from a mapper that keeps no memo.
	plain := newMemoAuth(t, &memoMapper{}, authn.Options{CacheMaxEntries: 1})
	if _, err := plain.Authenticate(ctx, token("https://a", 1)); err != nil {
		t.Fatal(err)
	}
	entry := plain.CacheBytes()

	m := &memoMapper{memoBytes: 1000}
	auth := newMemoAuth(t, m, authn.Options{CacheMaxEntries: 1})
	for range 3 {
		if _, err := auth.Authenticate(ctx, token("https://a", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if m.mapped.Load() != 1 || m.reused.Load() != 2 {
		t.Fatalf("mapped %d, reused %d; want the miss mapped and both hits reusing its memo", m.mapped.Load(), m.reused.Load())
	}
	if got := auth.CacheBytes(); got != entry+1000 {
		t.Fatalf("cache bytes %d, want the entry's %d and the memo's 1000", got, entry)
	}
	// A new mapper version: the memo is stale, the token is mapped again, one memo counted.
	m.version.Add(1)
	if _, err := auth.Authenticate(ctx, token("https://a", 1)); err != nil {
		t.Fatal(err)
	}
	if m.mapped.Load() != 2 {
		t.Fatalf("mapped %d times; a new version must map the cached token again", m.mapped.Load())
	}
	if got := auth.CacheBytes(); got != entry+1000 {
		t.Fatalf("cache bytes %d after a new memo replaced the stale one, want %d", got, entry+1000)
	}
	// Another token evicts the first (one entry at most): its memo leaves with it.
	if _, err := auth.Authenticate(ctx, token("https://a", 2)); err != nil {
		t.Fatal(err)
	}
	if got := auth.CacheBytes(); got != entry+1000 {
		t.Fatalf("cache bytes %d with one entry and its memo, want %d", got, entry+1000)
	}
}

// A memo that does not fit in CacheMaxBytes is not kept: the next hit maps again.
func TestMemoBeyondTheByteBoundIsNotKept(t *testing.T) {
	ctx := context.Background()
	m := &memoMapper{memoBytes: 1 << 20}
	auth := newMemoAuth(t, m, authn.Options{CacheMaxEntries: 10, CacheMaxBytes: 64 << 10})
	for range 2 {
		if _, err := auth.Authenticate(ctx, token("https://a", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if m.mapped.Load() != 2 || m.reused.Load() != 0 {
		t.Fatalf("mapped %d, reused %d; a memo larger than the bound must not be kept", m.mapped.Load(), m.reused.Load())
	}
	if got := auth.CacheBytes(); got > 64<<10 {
		t.Fatalf("cache bytes %d beyond the bound", got)
	}
}

// Memos kept and replaced while entries are evicted by other requests are counted out
// exactly: once every entry is replaced by one without a memo, the cache takes what those
// entries take, nothing more.
func TestMemoBytesUnderConcurrentEviction(t *testing.T) {
	ctx := context.Background()
	const bound = 8
	plain := newMemoAuth(t, &memoMapper{}, authn.Options{CacheMaxEntries: bound})
	for n := range bound {
		if _, err := plain.Authenticate(ctx, token("https://a", 100000+n)); err != nil {
			t.Fatal(err)
		}
	}
	want := plain.CacheBytes()

	m := &memoMapper{memoBytes: 500}
	auth := newMemoAuth(t, m, authn.Options{CacheMaxEntries: bound})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 300 {
				if i%50 == 0 {
					m.version.Add(1)
				}
				if _, err := auth.Authenticate(ctx, token("https://a", (w*7+i)%20)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	m.memoBytes = 0 // the tokens below keep no memo
	for n := range bound {
		if _, err := auth.Authenticate(ctx, token("https://a", 100000+n)); err != nil {
			t.Fatal(err)
		}
	}
	if got := auth.CacheBytes(); got != want {
		t.Fatalf("cache bytes %d after every memo left, want %d (the entries alone)", got, want)
	}
}
