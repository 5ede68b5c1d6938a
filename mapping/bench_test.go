package mapping

import (
	"fmt"
	"strings"
	"testing"
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
