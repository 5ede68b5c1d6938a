package mapping

import (
	"context"
	"errors"
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// FuzzParse checks that no data makes Parse panic, that it refuses with an *InvalidError,
// and that whatever it accepts keeps the rules every entry must satisfy and can be applied.
func FuzzParse(f *testing.F) {
	f.Add(goodV3, "- group: developers\n  groups: [dev]\n", "")
	f.Add(badV2, "- {group: g, groups: []}", "mapRoles")
	f.Add("- subject: a\n  username: \"{{email}}:{{sub}}\"\n", "[]", "")
	f.Add("- &a {subject: x, username: y}\n- *a\n", "- {issuer: "+dex+", group: g, groups: [a, a]}", "")
	f.Add("- subject: a\n  username: x\n  username: y\n---\n- z\n", "null", "mapusers")
	f.Add("{{{", "- [", "\x00")
	f.Fuzz(func(t *testing.T, users, groups, extraKey string) {
		data := map[string]string{KeyUsers: users, KeyGroups: groups}
		if extraKey != "" {
			data[extraKey] = users
		}
		m, err := Parse(data, testIssuers)
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) || len(inv.Problems) == 0 || m != nil {
				t.Fatalf("Parse refused without an *InvalidError listing problems: %T %v", err, err)
			}
			return
		}
		for i, e := range m.Users {
			if (e.Subject == "") == (e.Email == "") || e.Username == "" && len(e.Groups) == 0 {
				t.Fatalf("accepted mapUsers[%d] breaks the rules: %+v", i, e)
			}
		}
		for i, e := range m.Groups {
			if e.Group == "" || len(e.Groups) == 0 {
				t.Fatalf("accepted mapGroups[%d] breaks the rules: %+v", i, e)
			}
		}
		for _, e := range m.Users {
			id := identity(func(id *authn.Identity) { id.Subject, id.Email = e.Subject, e.Email })
			for _, g := range m.Groups {
				id.Groups = append(id.Groups, g.Group)
			}
			_, match, err := m.Apply(context.Background(), id, true)
			if err == nil && match.User < 0 {
				t.Fatalf("an identity made from %+v did not match it", e)
			}
		}
	})
}

// FuzzParseManifest checks that no manifest makes ParseManifest panic.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(manifest))
	f.Add([]byte(`{"apiVersion":"v1","kind":"ConfigMap","data":{"mapUsers":"- {subject: a, username: x}"}}`))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nbinaryData: {a: b}\n---\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := ParseManifest(b, testIssuers)
		if (m == nil) == (err == nil) {
			t.Fatalf("ParseManifest = %v, %v", m, err)
		}
	})
}
