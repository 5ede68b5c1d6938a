package mapping

import (
	"context"
	"fmt"
	"strings"
	"testing"

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
