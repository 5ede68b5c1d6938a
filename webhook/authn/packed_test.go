package authn

import (
	"fmt"
	"reflect"
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
			got, err := unpackIdentity(tc.id.pack(i), issuers)
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
	packed := id.pack(0)
	for n := range len(packed) {
		if got, err := unpackIdentity(packed[:n], []string{"https://a"}); err == nil {
			t.Fatalf("the first %d of %d bytes unpacked to %+v", n, len(packed), got)
		}
	}
	if _, err := unpackIdentity(packed, nil); err == nil {
		t.Fatal("an issuer index out of range unpacked")
	}
}

func FuzzUnpack(f *testing.F) {
	f.Add((&Identity{Issuer: "https://a", Subject: "s", User: User{Name: "n", Groups: []string{"g"}}}).pack(0))
	f.Add("\x00\x00\x05")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = unpackIdentity(s, []string{"https://a"})
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
		packed, compared := id.packCounted(0)
		strings := 4 + 2*n
		if limit := 16*16 + 2*strings; compared > limit {
			t.Errorf("%d groups: %d comparisons for %d strings; want at most %d (linear)", n, compared, strings, limit)
		}
		got, err := unpackIdentity(packed, []string{"https://a.example"})
		if err != nil || !reflect.DeepEqual(got.User.Groups, id.User.Groups) || !reflect.DeepEqual(got.Groups, id.Groups) {
			t.Fatalf("%d groups: the identity does not round-trip: %v", n, err)
		}
	}
}
