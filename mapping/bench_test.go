package mapping

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// bigMapping is a ConfigMap manifest with n realistic entries (~110 bytes each, as the issue's
// measure): a mapUsers entry by UUID subject with a username, then by email, then a
// mapGroups entry, in turn.
func bigMapping(n int) []byte {
	var users, groups strings.Builder
	for i := range n {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&users, "    - subject: %08x-4f1c-4b6e-9d2a-%012x\n      username: user-%d\n      groups: [team-%d]\n", i, i, i, i%50)
		case 1:
			fmt.Fprintf(&users, "    - email: person.number-%d@example.com\n      groups: [team-%d, readers]\n", i, i%50)
		default:
			fmt.Fprintf(&groups, "    - group: idp-group-%08x-%d\n      groups: [k8s-group-%d]\n", i, i, i%50)
		}
	}
	return []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: oidc-authenticator-mapping\n  namespace: kube-system\ndata:\n  mapUsers: |\n" +
		users.String() + "  mapGroups: |\n" + groups.String())
}

// BenchmarkParse50k decodes and validates a 50,000-entry manifest, what a reload costs:
// `go test -run '^$' -bench Parse50k -benchmem ./mapping/`.
func BenchmarkParse50k(b *testing.B) {
	manifest := bigMapping(50_000)
	b.SetBytes(int64(len(manifest)))
	b.ReportAllocs()
	for b.Loop() {
		in, err := DecodeManifest(manifest)
		if err != nil {
			b.Fatal(err)
		}
		m, err := ParseWith(in.Data, ParseOptions{Issuers: testIssuers})
		if err != nil {
			b.Fatal(err)
		}
		if len(m.Users)+len(m.Groups) != 50_000 {
			b.Fatalf("%d entries", len(m.Users)+len(m.Groups))
		}
	}
}

// exprMapping has n mapUsers entries by expression: indexed (claims.sub == '...') or not
// (claims.?sub.orValue(”).startsWith('...'), which the index cannot help with).
func exprMapping(n int, indexed bool) map[string]string {
	var users strings.Builder
	for i := range n {
		if indexed {
			fmt.Fprintf(&users, "- expression: \"claims.sub == 'user-%d'\"\n  username: u%d\n", i, i)
		} else {
			fmt.Fprintf(&users, "- expression: \"claims.?sub.orValue('').startsWith('user-%d.')\"\n  username: u%d\n", i, i)
		}
	}
	return map[string]string{KeyUsers: users.String()}
}

// BenchmarkMapExpressions maps one token with 0 or 1,000 expression entries: matching
// (indexed entries, or entries the index cannot help with), and a cache hit answered from the
// memo: `go test -run '^$' -bench MapExpressions -benchmem ./mapping/`.
func BenchmarkMapExpressions(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		n       int
		indexed bool
		memo    bool
	}{
		{"entries=0/match", 0, true, false},
		{"entries=1000/indexed/match", 1000, true, false},
		{"entries=1000/unindexed/match", 1000, false, false},
		{"entries=1000/unindexed/memo", 1000, false, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := NewStore(StoreOptions{Issuers: testIssuers})
			data := exprMapping(tc.n, tc.indexed)
			if tc.n == 0 {
				data = map[string]string{KeyGroups: "- group: developers\n  groups: [devs]\n"}
			}
			s.Update(Snapshot{Data: data, Version: "1"})
			id := identity(func(id *authn.Identity) { setClaim(id, "sub", "user-500") })
			_, memo, err := s.MapMemo(ctx, id, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if tc.memo {
					_, _, err = s.MapMemo(ctx, id, memo)
				} else {
					_, err = s.Map(ctx, id)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(s.evaluated.Load())/float64(b.N+1), "evals/op")
		})
	}
}

// scaleMapping is a ConfigMap manifest of n mapUsers entries shaped as make bench-scale
// writes mapping.file (test/bench/scale.go, func file): a quoted UUID subject, an email as
// username and one group each; edit changes every subject, as the bench's edit does.
func scaleMapping(n, edit int) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: oidc-auth\n  namespace: kube-system\ndata:\n  mapUsers: |\n")
	for i := range n {
		fmt.Fprintf(&b, "    - subject: \"%08x-1111-2222-3333-%012d\"\n      username: \"user-%d@example.com\"\n      groups: [\"team-%d\"]\n", i, i+edit, i, i%50)
	}
	return []byte(b.String())
}

// nopObserver stands in for the metrics.
type nopObserver struct{}

func (nopObserver) MappingReloaded(string, time.Duration) {}
func (nopObserver) MappingEntries(string, int)            {}

// BenchmarkReload50k is what the server does when a 50,000-entry mapping.file is edited, end
// to end, with the previous version in force: the poll that reads and hashes the file and
// decodes the manifest, then the Store's parse, check and indexes, the swap, the kept copy
// written to the state directory, and the metrics. cpu-s/op is the process's CPU (the
// collector's included) over the timed part, which is what make bench-scale's reload CPU
// measures in the server:
// `go test -run '^$' -bench Reload50k -benchmem ./mapping/`.
func BenchmarkReload50k(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "mapping.yaml")
	versions := [][]byte{scaleMapping(50_000, 1), scaleMapping(50_000, 2)}
	write := func(content []byte) {
		tmp := path + ".new"
		if err := os.WriteFile(tmp, content, 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
	}
	write(scaleMapping(50_000, 0))
	src := &FileSource{Path: path}
	var reloads int
	s := NewStore(StoreOptions{
		Issuers:        testIssuers,
		PersistFile:    filepath.Join(dir, "cache", "mapping.json"),
		PersistSubject: src.String(),
		Observer:       nopObserver{},
		OnReload: func(result string) {
			if result != ReloadSuccess {
				b.Fatalf("reload: %s", result)
			}
			reloads++
		},
	})
	var p poller
	reload := func() {
		snap, changed := p.poll(src)
		if !changed {
			b.Fatal("the edit was not seen")
		}
		s.Update(snap)
	}
	reload()
	b.SetBytes(int64(len(versions[0])))
	b.ReportAllocs()
	var cpu time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		write(versions[i%2])
		i++
		before := processCPU(b)
		b.StartTimer()
		reload()
		b.StopTimer()
		cpu += processCPU(b) - before
		b.StartTimer()
	}
	if reloads != i+1 {
		b.Fatalf("%d reloads for %d edits", reloads, i)
	}
	b.ReportMetric(cpu.Seconds()/float64(i), "cpu-s/op")
}

// processCPU is the CPU the process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
