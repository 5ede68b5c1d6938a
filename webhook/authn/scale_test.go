package authn_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// dexShapedVerifier accepts every token and gives the identity the benchmark's tokens carry
// (test/bench: a random 32-character sub, a distinct email, two groups of which one is shared
// by everyone and one by a fiftieth, mapped as username: email, uid: sub, groups prefixed).
type dexShapedVerifier struct{ expiry time.Time }

func (v dexShapedVerifier) Verify(_ context.Context, tok *authn.Unverified) (*authn.Identity, error) {
	var c struct {
		N   int    `json:"n"`
		Sub string `json:"sub"`
	}
	_, payload, _ := strings.Cut(tok.Raw, ".")
	payload, _, _ = strings.Cut(payload, ".")
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	email := fmt.Sprintf("user-%d@example.com", c.N)
	team := fmt.Sprintf("team-%d", c.N%50)
	return &authn.Identity{
		Issuer: tok.Issuer, Subject: c.Sub, Email: email, EmailVerified: authn.Verified(true),
		Groups: []string{"developers", team}, Expiry: v.expiry,
		User: authn.User{Name: email, UID: c.Sub, Groups: []string{"oidc:developers", "oidc:" + team}},
	}, nil
}

func dexShapedToken(iss string, n int, rng *rand.Rand) string {
	enc := base64.RawURLEncoding
	sub := make([]byte, 24)
	for i := range sub {
		sub[i] = byte(rng.Uint32())
	}
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "k"})
	c, _ := json.Marshal(map[string]any{"iss": iss, "n": n, "sub": enc.EncodeToString(sub)})
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + ".c2ln"
}

// BenchmarkCacheAtScale fills the cache with 10k, 100k and 1M identities and reports the
// memory each takes (live-B: the live heap and the cache's chunks outside it; heap-B: the
// heap alone; rss-B: the process's resident memory), then measures cache hits over all of
// them (issue 17: at most 250 B of RSS per identity, and a hit at 1M no dearer than 1.1 × one
// at 10k). Run it with
// `go test -run '^$' -bench CacheAtScale -benchtime 1000000x ./webhook/authn/`.
func BenchmarkCacheAtScale(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("identities=%d", n), func(b *testing.B) {
			const iss = "https://issuer.example"
			rng := rand.New(rand.NewPCG(1, 2))
			tokens := newTokenArena(b, n, func(i int) string { return dexShapedToken(iss, i, rng) })
			auth, err := authn.New(map[string]authn.Verifier{iss: dexShapedVerifier{expiry: time.Now().Add(time.Hour)}}, nil,
				authn.Options{CacheTTL: time.Hour, CacheMaxEntries: n, CacheMaxBytes: 0})
			if err != nil {
				b.Fatal(err)
			}
			// What making the tokens left behind is returned first, so that the RSS measured
			// after the fill is not lowered by the fill reusing it.
			debug.FreeOSMemory()
			before, rssBefore := liveHeap(), rss(b)
			ctx := context.Background()
			for i := range n {
				if _, err := auth.Authenticate(ctx, tokens.token(i)); err != nil {
					b.Fatal(err)
				}
			}
			rssAfter, after := rss(b), liveHeap()
			offHeap := authn.CacheOffHeap(auth)
			if got := auth.CacheEntries(); got != n {
				b.Fatalf("%d identities cached; want %d", got, n)
			}
			b.ResetTimer()
			for i := range b.N {
				res, err := auth.Authenticate(ctx, tokens.token((i*7919)%n))
				if err != nil || !res.Cached {
					b.Fatalf("hit %d: cached=%v, %v", i, res.Cached, err)
				}
			}
			b.StopTimer()
			// After the loop: ResetTimer would drop it.
			b.ReportMetric((float64(after)-float64(before)+float64(offHeap))/float64(n), "live-B/identity")
			b.ReportMetric((float64(after)-float64(before))/float64(n), "heap-B/identity")
			b.ReportMetric(float64(rssAfter-rssBefore)/float64(n), "rss-B/identity")
			runtime.KeepAlive(auth)
		})
	}
}

// tokenArena holds the benchmark's tokens in one block outside the Go heap (arenaMemory): a
// million token strings of their own would be a million objects for the collector to mark
// in every cycle of the timed loop, and would set the heap's headroom, costs of the benchmark
// that a server, whose requests bring their tokens, does not have.
type tokenArena struct {
	all  string
	ends []uint32
}

func newTokenArena(b *testing.B, n int, token func(i int) string) tokenArena {
	first := token(0)
	mem := arenaMemory(b, (len(first)+16)*n)
	ends := make([]uint32, n)
	end := 0
	for i := range ends {
		tok := first
		if i > 0 {
			tok = token(i)
		}
		end += copy(mem[end:], tok)
		ends[i] = uint32(end)
	}
	return tokenArena{all: unsafe.String(&mem[0], end), ends: ends}
}

func (a tokenArena) token(i int) string {
	var start uint32
	if i > 0 {
		start = a.ends[i-1]
	}
	return a.all[start:a.ends[i]]
}

// rss is the process's resident memory, as the kernel counts it: the live heap plus what the
// garbage collector let grow between collections and has not returned yet.
func rss(b *testing.B) int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kib << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// liveHeap is the heap that survives a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
