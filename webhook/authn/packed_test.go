package authn

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// What the cache keeps of an identity unpacks to the same identity (its claim set aside).
func TestPackRoundTrip(t *testing.T) {
	issuers := []string{"https://a.example", "https://b.example"}
	exp := time.Unix(1_900_000_000, 0)
	tests := []struct {
		name string
		id   Identity
	}{
		{"username from email, uid from sub (written once each)", Identity{
			Issuer: issuers[1], Subject: "CiQwOGE4Njg0Yi1kYjg4", Email: "jane@example.com", EmailVerified: Verified(true),
			Groups: []string{"admins", "dev"}, Expiry: exp,
			User: User{Name: "jane@example.com", UID: "CiQwOGE4Njg0Yi1kYjg4", Groups: []string{"oidc:admins", "oidc:dev"}},
		}},
		{"no email, email_verified false, no groups", Identity{
			Issuer: issuers[0], Subject: "s", EmailVerified: Verified(false), Expiry: exp,
			User: User{Name: "oidc:s", UID: "s"},
		}},
		{"extra values, unicode, empty strings in lists", Identity{
			Issuer: issuers[0], Subject: "ü-subject", Email: "ü@example.com", Expiry: exp,
			Groups: []string{"", "ü"},
			User: User{Name: "ü", Groups: []string{""}, Extra: map[string][]string{
				"authentication.kubernetes.io/credential-id": {"JTI=abc"}, "example.com/tenant": {"a", "b", "a"},
			}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			if tc.id.Issuer == issuers[1] {
				i = 1
			}
			got, err := unpackIdentity(tc.id.pack("", i, nil), issuers, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.id) {
				t.Fatalf("unpacked\n%+v\nwant\n%+v", *got, tc.id)
			}
		})
	}
}

// A damaged entry is an error, never a panic or a partial identity.
func TestUnpackDamaged(t *testing.T) {
	id := Identity{Issuer: "https://a", Subject: "s", Email: "e@x", Groups: []string{"g"}, Expiry: time.Unix(1, 0),
		User: User{Name: "e@x", UID: "s", Groups: []string{"g"}, Extra: map[string][]string{"k": {"v"}}}}
	packed := id.pack("", 0, nil)
	for n := range len(packed) {
		if got, err := unpackIdentity(packed[:n], []string{"https://a"}, nil); err == nil {
			t.Fatalf("the first %d of %d bytes unpacked to %+v", n, len(packed), got)
		}
	}
	if _, err := unpackIdentity(packed, nil, nil); err == nil {
		t.Fatal("an issuer index out of range unpacked")
	}
}

func FuzzUnpack(f *testing.F) {
	f.Add((&Identity{Issuer: "https://a", Subject: "s", User: User{Name: "n", Groups: []string{"g"}}}).pack("", 0, nil))
	f.Add("\x00\x00\x05")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = unpackIdentity(s, []string{"https://a"}, []string{"g"})
	})
}

// Packing is linear in the number of strings: a token with 1,000 groups (prefixed, so 2,000
// distinct strings) makes a few comparisons per string, not one per string packed before it
// (issue 17 measured 76% of a cold review's CPU there).
func TestPackIsLinearInGroups(t *testing.T) {
	for _, n := range []int{1, 10, 100, 1000, 4000} {
		id := Identity{Issuer: "https://a.example", Subject: "s", Email: "e@example.com", User: User{Name: "e@example.com", UID: "s"}}
		for i := range n {
			g := fmt.Sprintf("group-%d", i)
			id.Groups = append(id.Groups, g)
			id.User.Groups = append(id.User.Groups, "oidc:"+g)
		}
		packed, compared := id.packCounted("", 0, nil)
		strings := 4 + 2*n
		if limit := 16*16 + 2*strings; compared > limit {
			t.Errorf("%d groups: %d comparisons for %d strings; want at most %d (linear)", n, compared, strings, limit)
		}
		got, err := unpackIdentity(packed, []string{"https://a.example"}, nil)
		if err != nil || !reflect.DeepEqual(got.User.Groups, id.User.Groups) || !reflect.DeepEqual(got.Groups, id.Groups) {
			t.Fatalf("%d groups: the identity does not round-trip: %v", n, err)
		}
	}
}

// Group names and extra values are kept once for the whole cache and each identity refers
// to them by number; what does not fit the table's budget, or is too long to be worth
// sharing, is packed into the identity as before. Either way the identity round-trips.
func TestPackSharesCommonStrings(t *testing.T) {
	issuers := []string{"https://a.example"}
	long := strings.Repeat("g", maxInternedLen+1)
	id := func(n int) Identity {
		return Identity{Issuer: issuers[0], Subject: fmt.Sprintf("sub-%d", n), Email: fmt.Sprintf("u%d@example.com", n),
			Groups: []string{"developers", fmt.Sprintf("team-%d", n%3), long}, Expiry: time.Unix(1_900_000_000, 0),
			User: User{Name: fmt.Sprintf("u%d@example.com", n), UID: fmt.Sprintf("sub-%d", n),
				Groups: []string{"oidc:developers", fmt.Sprintf("oidc:team-%d", n%3)},
				Extra:  map[string][]string{"example.com/tenant": {"blue"}}}}
	}
	shared := newInterned(1 << 20)
	alone := id(0)
	unshared := alone.pack("", 0, nil)
	var packed []string
	for n := range 30 {
		packed = append(packed, func() string { i := id(n); return i.pack("", 0, shared) }())
	}
	// developers, team-0..2, oidc:developers, oidc:team-0..2, the extra key and value; not long.
	if got := len(shared.list()); got != 10 {
		t.Fatalf("%d strings shared; want 10: %q", got, shared.list())
	}
	if len(packed[0]) >= len(unshared)-40 {
		t.Fatalf("a packed identity takes %d bytes with the shared table and %d without; want the groups out of it", len(packed[0]), len(unshared))
	}
	for n, p := range packed {
		got, err := unpackIdentity(p, issuers, shared.list())
		if want := id(n); err != nil || !reflect.DeepEqual(*got, want) {
			t.Fatalf("identity %d unpacked to %+v, %v; want %+v", n, got, err, want)
		}
	}
	// A reference beyond the table is damage, not a panic.
	if _, err := unpackIdentity(packed[0], issuers, shared.list()[:2]); err == nil {
		t.Fatal("an identity unpacked with a table that lacks its strings")
	}

	// A full table takes no more: later strings are packed into the identity.
	small := newInterned(2 * (internedOverhead + int64(len("oidc:developers"))))
	for n := range 5 {
		i := id(n)
		got, err := unpackIdentity(i.pack("", 0, small), issuers, small.list())
		if err != nil || !reflect.DeepEqual(*got, i) {
			t.Fatalf("with a full table, identity %d unpacked to %+v, %v", n, got, err)
		}
	}
	if b := small.bytes.Load(); b > small.budget || len(small.list()) != 2 {
		t.Fatalf("the table holds %d strings in %d bytes; its budget is %d", len(small.list()), b, small.budget)
	}
}
