package mapping

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// Entries matched by expression: mapUsers by subject, email or expression (exactly one);
// mapGroups by group or expression (exactly one); the same text twice for overlapping issuers
// is a duplicate; compile errors name the entry and the expression.
func TestParseExpressionEntries(t *testing.T) {
	tests := []struct {
		rule   string
		users  string
		groups string
		want   []problem
	}{
		{
			rule:  "a compile error names the entry and the expression",
			users: "- expression: \"claims.hd ==\"\n  groups: [g]\n",
			want:  []problem{{"mapUsers[0].expression", `"claims.hd ==": compilation failed: ERROR: <input>:1:`}},
		},
		{
			rule:   "an expression must be a condition (type error)",
			groups: "- expression: claims.hd\n  groups: [g]\n",
			want:   []problem{{"mapGroups[0].expression", `"claims.hd": must evaluate to bool`}},
		},
		{
			rule:  "only the claims variable",
			users: "- expression: \"user.username == 'a'\"\n  groups: [g]\n",
			want:  []problem{{"mapUsers[0].expression", "undeclared reference to 'user'"}},
		},
		{
			rule:  "exactly one of subject, email and expression: subject and expression",
			users: "- subject: a\n  expression: \"claims.hd == 'x'\"\n  groups: [g]\n",
			want:  []problem{{"mapUsers[0].expression", "must not be set together with subject or email"}},
		},
		{
			rule:  "exactly one of subject, email and expression: email and expression",
			users: "- email: a@example.com\n  expression: \"claims.hd == 'x'\"\n  groups: [g]\n",
			want:  []problem{{"mapUsers[0].expression", "must not be set together with subject or email"}},
		},
		{
			rule:   "exactly one of group and expression: both",
			groups: "- group: dev\n  expression: \"claims.hd == 'x'\"\n  groups: [g]\n",
			want:   []problem{{"mapGroups[0].expression", "must not be set together with group"}},
		},
		{
			rule:   "exactly one of group and expression: neither",
			groups: "- groups: [g]\n",
			want:   []problem{{"mapGroups[0].group", "required: the value of the token's groups claim this entry matches, or an expression"}},
		},
		{
			rule:  "an empty expression",
			users: "- expression: \"\"\n  groups: [g]\n",
			want:  []problem{{"mapUsers[0].expression", "must not be empty"}},
		},
		{
			rule:  "claims.email needs claims.email_verified, as in claimMappings",
			users: "- expression: \"claims.email.endsWith('@example.com')\"\n  groups: [g]\n",
			want:  []problem{{"mapUsers[0].expression", "reads claims.email but not claims.email_verified"}},
		},
		{
			// The security review's bypass: an index reads email as a select does.
			rule:  "claims['email'] needs claims.email_verified too",
			users: "- expression: \"claims['email'] == 'ceo@example.com'\"\n  groups: [g]\n",
			want:  []problem{{"mapUsers[0].expression", "reads claims.email but not claims.email_verified"}},
		},
		{
			rule:  "so does a comprehension over every claim",
			users: "- expression: \"claims.exists(k, claims[k] == 'ceo@example.com')\"\n  groups: [g]\n",
			want:  []problem{{"mapUsers[0].expression", "reads claims.email but not claims.email_verified"}},
		},
		{
			rule:  "the same expression twice for overlapping issuers is a duplicate",
			users: "- expression: \"claims.hd == 'x'\"\n  groups: [a]\n- issuer: " + dex + "\n  expression: \"claims.hd == 'x'\"\n  groups: [b]\n",
			want:  []problem{{"mapUsers[1].expression", `expression "claims.hd == 'x'" is already mapped by mapUsers[0] (mapUsers[0] has no issuer, so it applies to every issuer); merge them into one entry`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			_, err := Parse(map[string]string{KeyUsers: tt.users, KeyGroups: tt.groups}, testIssuers)
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("want an *InvalidError, got %v", err)
			}
			if len(inv.Problems) != len(tt.want) {
				t.Fatalf("got %d problems, want %d: %v", len(inv.Problems), len(tt.want), err)
			}
			for i, w := range tt.want {
				if got := inv.Problems[i]; got.Field != w.field || !strings.Contains(got.Detail, w.detail) {
					t.Errorf("problem %d = %q, want %s: ...%s...", i, got, w.field, w.detail)
				}
			}
		})
	}

	// Not duplicates: the same text in mapUsers and mapGroups, or for two different issuers.
	mustParse(t,
		"- issuer: "+dex+"\n  expression: \"claims.hd == 'x'\"\n  groups: [a]\n- issuer: "+google+"\n  expression: \"claims.hd == 'x'\"\n  groups: [b]\n",
		"- expression: \"claims.hd == 'x'\"\n  groups: [c]\n")
}

func TestApplyExpressionEntries(t *testing.T) {
	withHD := func(hd string) func(*authn.Identity) {
		return func(id *authn.Identity) { setClaim(id, "hd", hd) }
	}
	fromGoogle := func(id *authn.Identity) { id.Issuer = google }
	tests := []struct {
		rule         string
		users        string
		groups       string
		id           *authn.Identity
		requireMatch bool
		wantName     string
		wantGroups   []string
		wantUser     int
		wantGroupIdx []int
		wantErrors   []string
		wantReason   authn.Reason
	}{
		{
			rule:         "everyone whose hd is example.com gets a group",
			groups:       "- expression: \"claims.?hd.orValue('') == 'example.com'\"\n  groups: [staff]\n",
			id:           identity(withHD("example.com")),
			wantName:     "dex:alice@example.com",
			wantGroups:   []string{"dex:developers", "dex:everyone", "staff"},
			wantUser:     -1,
			wantGroupIdx: []int{0},
		},
		{
			rule:       "another hd does not match",
			groups:     "- expression: \"claims.?hd.orValue('') == 'example.com'\"\n  groups: [staff]\n",
			id:         identity(withHD("gmail.com")),
			wantName:   "dex:alice@example.com",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   -1,
		},
		{
			rule:       "an expression that fails (the token has no hd) does not match, and says why",
			groups:     "- expression: \"claims.hd == 'example.com'\"\n  groups: [staff]\n",
			id:         identity(),
			wantName:   "dex:alice@example.com",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   -1,
			wantErrors: []string{"mapGroups[0].expression: expression 'claims.hd == 'example.com'' resulted in error: no such key: hd"},
		},
		{
			rule:         "a wildcard: every subject with a prefix gets a username and groups",
			users:        "- expression: \"claims.sub.startsWith('alice')\"\n  username: \"robot:{{sub}}\"\n  groups: [robots]\n",
			id:           identity(),
			wantName:     "robot:alice-sub",
			wantGroups:   []string{"dex:developers", "dex:everyone", "robots"},
			wantUser:     0,
			wantGroupIdx: nil,
		},
		{
			rule:       "an entry by subject wins over an earlier entry by expression",
			users:      "- expression: \"claims.sub.startsWith('alice')\"\n  username: wildcard\n- subject: alice-sub\n  username: exact\n",
			id:         identity(),
			wantName:   "exact",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   1,
		},
		{
			rule:       "an entry by email wins over an entry by expression",
			users:      "- expression: \"true\"\n  username: anyone\n- email: alice@example.com\n  username: by-email\n",
			id:         identity(),
			wantName:   "by-email",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   1,
		},
		{
			rule:       "of entries by expression, the first true in file order wins",
			users:      "- expression: \"claims.age > 50\"\n  username: old\n- expression: \"claims.age > 18\"\n  username: adult\n- expression: \"true\"\n  username: anyone\n",
			id:         identity(),
			wantName:   "adult",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   1,
		},
		{
			rule:       "an expression entry for another issuer does not match",
			users:      "- issuer: " + dex + "\n  expression: \"true\"\n  username: dex-user\n",
			id:         identity(fromGoogle),
			wantName:   "dex:alice@example.com",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   -1,
		},
		{
			rule:         "mapGroups entries by group and by expression all add, in file order",
			groups:       "- expression: \"'developers' in claims.groups\"\n  groups: [by-expression]\n- group: developers\n  groups: [by-group]\n",
			id:           identity(),
			wantName:     "dex:alice@example.com",
			wantGroups:   []string{"dex:developers", "dex:everyone", "by-expression", "by-group"},
			wantUser:     -1,
			wantGroupIdx: []int{0, 1},
		},
		{
			rule:         "requireMatch is satisfied by an expression entry",
			groups:       "- expression: \"claims.?hd.orValue('') == 'example.com'\"\n  groups: [staff]\n",
			id:           identity(withHD("example.com")),
			requireMatch: true,
			wantName:     "dex:alice@example.com",
			wantGroups:   []string{"dex:developers", "dex:everyone", "staff"},
			wantUser:     -1,
			wantGroupIdx: []int{0},
		},
		{
			rule:         "requireMatch: a failing expression is no match",
			groups:       "- expression: \"claims.hd == 'example.com'\"\n  groups: [staff]\n",
			id:           identity(),
			requireMatch: true,
			wantUser:     -1,
			wantErrors:   []string{"mapGroups[0].expression"},
			wantReason:   authn.ReasonNoMapping,
		},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			m := mustParse(t, tt.users, tt.groups)
			u, match, err := m.Apply(context.Background(), tt.id, tt.requireMatch)
			if got := reasonOf(t, err); got != tt.wantReason {
				t.Fatalf("reason %q, want %q (err %v)", got, tt.wantReason, err)
			}
			if len(match.Errors) != len(tt.wantErrors) {
				t.Fatalf("match errors %q, want %q", match.Errors, tt.wantErrors)
			}
			for i, w := range tt.wantErrors {
				if !strings.Contains(match.Errors[i], w) {
					t.Errorf("match error %q, want %q", match.Errors[i], w)
				}
			}
			if err != nil {
				return
			}
			if u.Name != tt.wantName || !slices.Equal(u.Groups, tt.wantGroups) {
				t.Fatalf("user %q groups %q, want %q %q", u.Name, u.Groups, tt.wantName, tt.wantGroups)
			}
			if match.User != tt.wantUser || !slices.Equal(match.Groups, tt.wantGroupIdx) {
				t.Fatalf("match %+v, want user %d groups %v", match, tt.wantUser, tt.wantGroupIdx)
			}
		})
	}
}

func TestDescribeExpressionMatch(t *testing.T) {
	m := mustParse(t, "- expression: \"claims.sub == 'alice-sub'\"\n  groups: [a]\n", "- expression: \"claims.hd == 'x'\"\n  groups: [b]\n")
	_, match, err := m.Apply(context.Background(), identity(), false)
	if err != nil {
		t.Fatal(err)
	}
	got := m.DescribeMatch(match)
	want := `mapUsers[0] (expression "claims.sub == 'alice-sub'") matched; not matched because their expression failed: mapGroups[0].expression: expression 'claims.hd == 'x'' resulted in error: no such key: hd`
	if got != want {
		t.Fatalf("DescribeMatch:\n got %s\nwant %s", got, want)
	}
}
