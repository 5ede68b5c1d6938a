package mapping

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// problem is an expected Problem: its exact field, and a part of its detail.
type problem struct{ field, detail string }

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		rule  string
		data  map[string]string
		want  []problem
		count int // expected number of problems; 0 means len(want)
	}{
		{
			rule: "unknown field",
			data: map[string]string{KeyUsers: "- subject: a\n  username: x\n  rolearn: arn:aws:iam::1:role/x\n"},
			want: []problem{{"mapUsers[0].rolearn", "unknown field; a mapUsers entry has the fields issuer, subject, email, expression, username, groups"}},
		},
		{
			rule: "field names are case-sensitive: userName",
			data: map[string]string{KeyUsers: "- subject: a\n  userName: x\n"},
			want: []problem{
				{"mapUsers[0].userName", "did you mean username? Field names are case-sensitive"},
				{"mapUsers[0].username", "required: set username, groups or both"},
			},
		},
		{
			rule: "field names are case-sensitive: Username",
			data: map[string]string{KeyUsers: "- subject: a\n  groups: [g]\n  Username: x\n"},
			want: []problem{{"mapUsers[0].Username", "did you mean username?"}},
		},
		{
			rule: "a mapUsers field in a mapGroups entry",
			data: map[string]string{KeyGroups: "- group: g\n  groups: [k]\n  subject: s\n"},
			want: []problem{{"mapGroups[0].subject", "unknown field in a mapGroups entry (subject is a field of mapUsers entries)"}},
		},
		{
			rule: "wrong type: groups given as a string",
			data: map[string]string{KeyUsers: "- subject: a\n  groups: admin\n"},
			want: []problem{{"mapUsers[0].groups", "must be a list of strings, not a single string; write groups: [admin]"}},
		},
		{
			rule: "wrong type: groups given as a mapping",
			data: map[string]string{KeyGroups: "- group: g\n  groups: {a: b}\n"},
			want: []problem{{"mapGroups[0].groups", "must be a list of strings; got a mapping"}},
		},
		{
			rule: "wrong type: a group that is a number",
			data: map[string]string{KeyUsers: "- subject: a\n  groups: [ok, 42]\n"},
			want: []problem{{"mapUsers[0].groups[1]", "must be a string; got a number"}},
		},
		{
			rule: "wrong type: an unquoted numeric subject, which YAML reads as a number",
			data: map[string]string{KeyUsers: "- subject: 110169484474386276334\n  username: x\n"},
			want: []problem{{"mapUsers[0].subject", "must be a string; got a number (put the value in quotes"}},
		},
		{
			rule: "wrong type: a username that YAML reads as a boolean",
			data: map[string]string{KeyUsers: "- subject: a\n  username: yes\n"},
			want: []problem{{"mapUsers[0].username", "must be a string; got a boolean"}},
		},
		{
			rule: "wrong type: an entry that is a string",
			data: map[string]string{KeyUsers: "- alice\n"},
			want: []problem{{"mapUsers[0]", "must be a mapping with the fields issuer, subject, email, expression, username, groups; got a string"}},
		},
		{
			rule: "wrong type: an empty entry",
			data: map[string]string{KeyUsers: "- subject: a\n  username: x\n-\n"},
			want: []problem{{"mapUsers[1]", "is an empty entry"}},
		},
		{
			rule: "wrong type: the key holds a mapping, not a list",
			data: map[string]string{KeyUsers: "subject: a\nusername: x\n"},
			want: []problem{{"mapUsers", `must be a YAML list of entries, each starting with "- "; got a mapping`}},
		},
		{
			rule: "issuer not configured",
			data: map[string]string{KeyUsers: "- issuer: https://dex.example.com/dex/\n  subject: a\n  username: x\n"},
			want: []problem{{"mapUsers[0].issuer", `"https://dex.example.com/dex/" is not a configured issuer (configured: ` + dex + ", " + google + ")"}},
		},
		{
			rule: "issuer not configured, in mapGroups",
			data: map[string]string{KeyGroups: "- issuer: https://evil.example.com\n  group: g\n  groups: [k]\n"},
			want: []problem{{"mapGroups[0].issuer", "is not a configured issuer"}},
		},
		{
			rule: "empty issuer",
			data: map[string]string{KeyUsers: "- issuer: \"\"\n  subject: a\n  username: x\n"},
			want: []problem{{"mapUsers[0].issuer", "must not be empty; omit issuer to match every configured issuer"}},
		},
		{
			rule: "duplicate: same issuer and subject",
			data: map[string]string{KeyUsers: "- issuer: " + dex + "\n  subject: a\n  username: x\n- issuer: " + dex + "\n  subject: a\n  username: why\n"},
			want: []problem{{"mapUsers[1].subject", `subject "a" is already mapped by mapUsers[0] (both for issuer ` + dex + ")"}},
		},
		{
			rule: "duplicate: same subject, both without issuer",
			data: map[string]string{KeyUsers: "- subject: a\n  username: x\n- subject: a\n  groups: [g]\n"},
			want: []problem{{"mapUsers[1].subject", "already mapped by mapUsers[0] (both have no issuer"}},
		},
		{
			rule: "duplicate: an earlier entry without issuer overlaps a later issuer-specific one",
			data: map[string]string{KeyUsers: "- subject: a\n  username: x\n- issuer: " + google + "\n  subject: a\n  username: why\n"},
			want: []problem{{"mapUsers[1].subject", "already mapped by mapUsers[0] (mapUsers[0] has no issuer, so it applies to every issuer)"}},
		},
		{
			rule: "duplicate: a later entry without issuer overlaps an earlier issuer-specific one",
			data: map[string]string{KeyUsers: "- issuer: " + google + "\n  subject: a\n  username: why\n- subject: a\n  username: x\n"},
			want: []problem{{"mapUsers[1].subject", "this entry has no issuer, so it applies to every issuer, including " + google}},
		},
		{
			rule: "duplicate: same email",
			data: map[string]string{KeyUsers: "- email: a@example.com\n  username: x\n- subject: s\n  username: z\n- email: a@example.com\n  username: why\n"},
			want: []problem{{"mapUsers[2].email", `email "a@example.com" is already mapped by mapUsers[0]`}},
		},
		{
			rule: "duplicate: same group",
			data: map[string]string{KeyGroups: "- group: dev\n  groups: [a]\n- issuer: " + dex + "\n  group: dev\n  groups: [b]\n"},
			want: []problem{{"mapGroups[1].group", `group "dev" is already mapped by mapGroups[0] (mapGroups[0] has no issuer`}},
		},
		{
			rule: "duplicate: a field set twice in one entry (YAML duplicate key)",
			data: map[string]string{KeyUsers: "- subject: a\n  username: x\n  username: why\n"},
			want: []problem{{"mapUsers[0].username", "is set more than once in this entry"}},
		},
		{
			rule: "both subject and email",
			data: map[string]string{KeyUsers: "- subject: a\n  email: a@example.com\n  username: x\n"},
			want: []problem{{"mapUsers[0].email", "must not be set together with subject"}},
		},
		{
			rule: "neither subject nor email",
			data: map[string]string{KeyUsers: "- username: x\n"},
			want: []problem{{"mapUsers[0].subject", "required: set subject, email or expression"}},
		},
		{
			rule: "neither username nor groups",
			data: map[string]string{KeyUsers: "- subject: a\n"},
			want: []problem{{"mapUsers[0].username", "required: set username, groups or both, or the entry changes nothing"}},
		},
		{
			rule: "empty username",
			data: map[string]string{KeyUsers: "- subject: a\n  username: \"\"\n"},
			want: []problem{{"mapUsers[0].username", "must not be empty; omit username to keep the username the token's claims give"}},
		},
		{
			rule: "username with no value (null)",
			data: map[string]string{KeyUsers: "- subject: a\n  username:\n  groups: [g]\n"},
			want: []problem{{"mapUsers[0].username", "must not be empty"}},
		},
		{
			rule: "empty subject",
			data: map[string]string{KeyUsers: "- subject: ''\n  username: x\n"},
			want: []problem{{"mapUsers[0].subject", "must not be empty"}},
		},
		{
			rule: "empty group name in a list",
			data: map[string]string{KeyUsers: "- subject: a\n  groups: [admins, \"\"]\n"},
			want: []problem{{"mapUsers[0].groups[1]", "must not be empty"}},
		},
		{
			rule: "empty group list",
			data: map[string]string{KeyUsers: "- subject: a\n  username: x\n  groups: []\n"},
			want: []problem{{"mapUsers[0].groups", "must list at least one group"}},
		},
		{
			rule: "mapGroups: empty group",
			data: map[string]string{KeyGroups: "- group: \"\"\n  groups: [k]\n"},
			want: []problem{{"mapGroups[0].group", "must not be empty"}},
		},
		{
			rule: "mapGroups: group and groups are required",
			data: map[string]string{KeyGroups: "- issuer: " + dex + "\n"},
			want: []problem{
				{"mapGroups[0].group", "required"},
				{"mapGroups[0].groups", "required"},
			},
		},
		{
			rule: "spaces around a matched value would never match",
			data: map[string]string{KeyUsers: "- subject: \"a \"\n  username: x\n"},
			want: []problem{{"mapUsers[0].subject", "has leading or trailing spaces"}},
		},
		{
			rule: "an email without @",
			data: map[string]string{KeyUsers: "- email: alice\n  username: x\n"},
			want: []problem{{"mapUsers[0].email", `"alice" is not an email address`}},
		},
		{
			rule: "bad placeholder: unclosed",
			data: map[string]string{KeyUsers: "- subject: a\n  username: \"oidc:{{email\"\n"},
			want: []problem{{"mapUsers[0].username", `has "{{email" with no closing }}`}},
		},
		{
			rule: "bad placeholder: closing braces without opening ones",
			data: map[string]string{KeyUsers: "- subject: a\n  username: \"oidc:email}}\"\n"},
			want: []problem{{"mapUsers[0].username", "has a brace outside a placeholder"}},
		},
		{
			rule: "bad placeholder: single braces",
			data: map[string]string{KeyUsers: "- subject: a\n  username: \"oidc:{email}\"\n"},
			want: []problem{{"mapUsers[0].username", "has a brace outside a placeholder"}},
		},
		{
			rule: "bad placeholder: empty name",
			data: map[string]string{KeyUsers: "- subject: a\n  username: \"oidc:{{}}\"\n"},
			want: []problem{{"mapUsers[0].username", "placeholder {{}}: the claim name is empty"}},
		},
		{
			rule: "bad placeholder: spaces in the name",
			data: map[string]string{KeyUsers: "- subject: a\n  username: \"{{ email }}\"\n"},
			want: []problem{{"mapUsers[0].username", "placeholder {{ email }}: ' ' may not appear in a claim name"}},
		},
		{
			rule: "bad placeholder: triple braces",
			data: map[string]string{KeyUsers: "- subject: a\n  username: \"{{{email}}}\"\n"},
			want: []problem{{"mapUsers[0].username", "'{' may not appear in a claim name"}},
		},
		{
			rule: "unknown data key",
			data: map[string]string{"mapRoles": "- rolearn: x\n"},
			want: []problem{{"mapRoles", "unknown key; the mapping has only the keys mapUsers and mapGroups"}},
		},
		{
			rule: "data keys are case-sensitive",
			data: map[string]string{"mapusers": "- subject: a\n  username: x\n"},
			want: []problem{{"mapusers", "unknown key; did you mean mapUsers? Keys are case-sensitive"}},
		},
		{
			rule: "not YAML",
			data: map[string]string{KeyUsers: "- subject: [unclosed\n"},
			want: []problem{{"mapUsers", "is not valid YAML (line numbers count from the first line of mapUsers): yaml: line 1:"}},
		},
		{
			rule: "not YAML: a tab for indentation",
			data: map[string]string{KeyGroups: "- group: g\n\tgroups: [k]\n"},
			want: []problem{{"mapGroups", "is not valid YAML"}},
		},
		{
			rule: "a YAML alias bomb is refused",
			data: map[string]string{KeyUsers: "- &a [x,x,x,x,x,x,x,x,x]\n- &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n- &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n" +
				"- &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n- &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n- &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"},
			want: []problem{{"mapUsers", "is not valid YAML"}},
		},
		{
			rule: "a second YAML document would be silently ignored",
			data: map[string]string{KeyUsers: "- subject: a\n  username: x\n---\n- subject: b\n  username: why\n"},
			want: []problem{{"mapUsers", "holds more than one YAML document"}},
		},
		{
			rule: "every problem is reported at once, in order",
			data: map[string]string{
				KeyUsers:  "- subject: a\n  email: a@example.com\n  username: x\n- subject: b\n  username: \"\"\n- subject: a\n  groups: admin\n",
				KeyGroups: "- group: g\n  groups: []\n",
				"extra":   "x",
			},
			want: []problem{
				{"extra", "unknown key"},
				{"mapUsers[0].email", "must not be set together with subject"},
				{"mapUsers[1].username", "must not be empty"},
				{"mapUsers[2].groups", "must be a list of strings"},
				{"mapUsers[2].subject", "already mapped by mapUsers[0]"},
				{"mapGroups[0].groups", "must list at least one group"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			m, err := Parse(tt.data, testIssuers)
			if err == nil {
				t.Fatalf("Parse accepted the data: %+v", m)
			}
			if m != nil {
				t.Error("Parse returned a mapping with an error; a refused version must not be partly used")
			}
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("error %T is not an *InvalidError: %v", err, err)
			}
			if len(inv.Problems) != len(tt.want) {
				t.Errorf("got %d problems, want %d: %v", len(inv.Problems), len(tt.want), err)
			}
			for i, w := range tt.want {
				if i >= len(inv.Problems) {
					break
				}
				got := inv.Problems[i]
				if got.Field != w.field || !strings.Contains(got.Detail, w.detail) {
					t.Errorf("problem %d = %q, want field %q with %q", i, got, w.field, w.detail)
				}
				if !strings.Contains(err.Error(), w.field+": ") {
					t.Errorf("error text %q does not name %s", err, w.field)
				}
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		rule       string
		data       map[string]string
		wantUsers  []UserEntry
		wantGroups []GroupEntry
	}{
		{rule: "no data is an empty mapping", data: nil},
		{rule: "empty values are an empty mapping", data: map[string]string{KeyUsers: "", KeyGroups: "  \n"}},
		{rule: "comments only are an empty mapping", data: map[string]string{KeyUsers: "# nobody yet\n"}},
		{rule: "an empty list is an empty mapping", data: map[string]string{KeyUsers: "[]", KeyGroups: "[]"}},
		{
			rule: "the issue's example",
			data: map[string]string{
				KeyUsers: `
- issuer: https://dex.example.com/dex     # optional: omitted = any configured issuer
  subject: CiQxMTEx                        # match the token's sub, or
  # email: alice@example.com              # its email (never when email_verified is false)
  username: alice                          # optional: replaces the claim-derived username
  groups: [cluster-admins]                 # added to the claim-derived groups
- email: bob@example.com
  username: "oidc:{{email}}"
`,
				KeyGroups: `
- issuer: https://dex.example.com/dex
  group: developers                        # a raw value of the token's groups claim (before prefix)
  groups: [dev-team]                       # Kubernetes groups added
`,
			},
			wantUsers: []UserEntry{
				{Issuer: dex, Subject: "CiQxMTEx", Username: "alice", Groups: []string{"cluster-admins"}},
				{Email: "bob@example.com", Username: "oidc:{{email}}"},
			},
			wantGroups: []GroupEntry{{Issuer: dex, Group: "developers", Groups: []string{"dev-team"}}},
		},
		{
			rule:      "the same subject for two different issuers is two identities",
			data:      map[string]string{KeyUsers: "- {issuer: " + dex + ", subject: a, username: x}\n- {issuer: " + google + ", subject: a, username: why}\n"},
			wantUsers: []UserEntry{{Issuer: dex, Subject: "a", Username: "x"}, {Issuer: google, Subject: "a", Username: "why"}},
		},
		{
			rule:      "the same value as subject of one entry and email of another is allowed (subject wins)",
			data:      map[string]string{KeyUsers: "- {subject: a@example.com, username: x}\n- {email: a@example.com, username: why}\n"},
			wantUsers: []UserEntry{{Subject: "a@example.com", Username: "x"}, {Email: "a@example.com", Username: "why"}},
		},
		{
			rule:      "JSON is YAML",
			data:      map[string]string{KeyUsers: `[{"subject": "a", "groups": ["system:masters"]}]`},
			wantUsers: []UserEntry{{Subject: "a", Groups: []string{"system:masters"}}},
		},
		{
			rule:      "placeholder names may hold letters, digits and _ . : -",
			data:      map[string]string{KeyUsers: "- subject: a\n  username: \"x-{{a_b.c:d-1}}\"\n"},
			wantUsers: []UserEntry{{Subject: "a", Username: "x-{{a_b.c:d-1}}"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			m, err := Parse(tt.data, testIssuers)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(m.Users, tt.wantUsers, func(a, b UserEntry) bool {
				return a.Issuer == b.Issuer && a.Subject == b.Subject && a.Email == b.Email &&
					a.Username == b.Username && slices.Equal(a.Groups, b.Groups)
			}) {
				t.Errorf("users = %+v, want %+v", m.Users, tt.wantUsers)
			}
			if !slices.EqualFunc(m.Groups, tt.wantGroups, func(a, b GroupEntry) bool {
				return a.Issuer == b.Issuer && a.Group == b.Group && slices.Equal(a.Groups, b.Groups)
			}) {
				t.Errorf("groups = %+v, want %+v", m.Groups, tt.wantGroups)
			}
		})
	}
}

// Rule: with no issuers configured, an entry naming one is an error that says so.
func TestParseNoIssuersConfigured(t *testing.T) {
	_, err := Parse(map[string]string{KeyUsers: "- {issuer: " + dex + ", subject: a, username: x}\n"}, nil)
	if err == nil || !strings.Contains(err.Error(), "mapUsers[0].issuer: \""+dex+"\" is not a configured issuer (no issuers are configured)") {
		t.Fatalf("err = %v", err)
	}
}
