package mapping

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

func TestApply(t *testing.T) {
	unverified := func(id *authn.Identity) { id.EmailVerified = ptr(false) }
	verified := func(id *authn.Identity) { id.EmailVerified = ptr(true) }
	fromGoogle := func(id *authn.Identity) { id.Issuer = google }
	bob := func(id *authn.Identity) {
		id.Subject, id.Email = "bob-sub", "bob@example.com"
		setClaim(id, "sub", "bob-sub")
		setClaim(id, "email", "bob@example.com")
	}
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
		wantReason   authn.Reason
		wantErrText  string
	}{
		{
			rule:       "nothing matches and requireMatch is false: the claim-derived user passes unmapped",
			users:      "- subject: someone-else\n  username: x\n",
			id:         identity(),
			wantName:   "dex:alice@example.com",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   -1,
		},
		{
			rule:         "nothing matches and requireMatch is true: denied as no_mapping",
			users:        "- subject: someone-else\n  username: x\n",
			id:           identity(),
			wantUser:     -1,
			wantReason:   authn.ReasonNoMapping,
			wantErrText:  `subject "alice-sub"`,
			requireMatch: true,
		},
		{
			rule:         "requireMatch is satisfied by a mapGroups entry alone",
			groups:       "- group: developers\n  groups: [dev-team]\n",
			id:           identity(),
			requireMatch: true,
			wantName:     "dex:alice@example.com",
			wantGroups:   []string{"dex:developers", "dex:everyone", "dev-team"},
			wantUser:     -1,
			wantGroupIdx: []int{0},
		},
		{
			rule:         "requireMatch is satisfied by a mapUsers entry alone",
			users:        "- subject: alice-sub\n  groups: [admins]\n",
			id:           identity(),
			requireMatch: true,
			wantName:     "dex:alice@example.com",
			wantGroups:   []string{"dex:developers", "dex:everyone", "admins"},
			wantUser:     0,
		},
		{
			rule:       "match by subject: the username is replaced and groups are added",
			users:      "- subject: alice-sub\n  username: alice\n  groups: [cluster-admins]\n",
			id:         identity(),
			wantName:   "alice",
			wantGroups: []string{"dex:developers", "dex:everyone", "cluster-admins"},
			wantUser:   0,
		},
		{
			rule:       "match by email when email_verified is absent",
			users:      "- email: alice@example.com\n  username: alice\n",
			id:         identity(),
			wantName:   "alice",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   0,
		},
		{
			rule:       "match by email when email_verified is true",
			users:      "- email: alice@example.com\n  username: alice\n",
			id:         identity(verified),
			wantName:   "alice",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   0,
		},
		{
			rule:       "an email entry never matches when email_verified is false",
			users:      "- email: alice@example.com\n  username: alice\n  groups: [admins]\n",
			id:         identity(unverified),
			wantName:   "dex:alice@example.com",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   -1,
		},
		{
			rule:         "the denial for an unverified email says why the email entry did not match",
			users:        "- email: alice@example.com\n  username: alice\n",
			id:           identity(unverified),
			requireMatch: true,
			wantUser:     -1,
			wantReason:   authn.ReasonNoMapping,
			wantErrText:  "mapUsers[0] maps this email, but the token says email_verified is false",
		},
		{
			rule:       "a subject entry wins over an email entry that also matches, whatever the file order",
			users:      "- email: alice@example.com\n  username: by-email\n  groups: [e]\n- subject: alice-sub\n  username: by-subject\n  groups: [s]\n",
			id:         identity(),
			wantName:   "by-subject",
			wantGroups: []string{"dex:developers", "dex:everyone", "s"},
			wantUser:   1,
		},
		{
			rule:       "an issuer-specific entry matches its issuer",
			users:      "- issuer: " + dex + "\n  subject: alice-sub\n  username: alice\n",
			id:         identity(),
			wantName:   "alice",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   0,
		},
		{
			rule:       "an issuer-specific entry does not match another issuer's token with the same subject",
			users:      "- issuer: " + dex + "\n  subject: alice-sub\n  username: alice\n",
			id:         identity(fromGoogle),
			wantName:   "dex:alice@example.com",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   -1,
		},
		{
			rule:         "the denial names an entry that matches for another issuer only",
			users:        "- issuer: " + dex + "\n  subject: alice-sub\n  username: alice\n",
			id:           identity(fromGoogle),
			requireMatch: true,
			wantUser:     -1,
			wantReason:   authn.ReasonNoMapping,
			wantErrText:  "mapUsers[0] maps this subject for issuer " + dex + " only",
		},
		{
			rule:       "an entry without issuer matches every configured issuer",
			users:      "- subject: alice-sub\n  username: alice\n",
			id:         identity(fromGoogle),
			wantName:   "alice",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   0,
		},
		{
			rule:       "entries for the same subject under different issuers each match their own issuer",
			users:      "- issuer: " + dex + "\n  subject: alice-sub\n  username: dex-alice\n- issuer: " + google + "\n  subject: alice-sub\n  username: google-alice\n",
			id:         identity(fromGoogle),
			wantName:   "google-alice",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   1,
		},
		{
			rule:       "an entry without username keeps the claim-derived username",
			users:      "- subject: alice-sub\n  groups: [admins]\n",
			id:         identity(),
			wantName:   "dex:alice@example.com",
			wantGroups: []string{"dex:developers", "dex:everyone", "admins"},
			wantUser:   0,
		},
		{
			rule:         "a mapGroups entry matches a raw value of the groups claim, not the prefixed group",
			groups:       "- group: dex:developers\n  groups: [wrong]\n- group: developers\n  groups: [dev-team]\n",
			id:           identity(),
			wantName:     "dex:alice@example.com",
			wantGroups:   []string{"dex:developers", "dex:everyone", "dev-team"},
			wantUser:     -1,
			wantGroupIdx: []int{1},
		},
		{
			rule:       "an issuer-specific mapGroups entry does not match another issuer",
			groups:     "- issuer: " + google + "\n  group: developers\n  groups: [dev-team]\n",
			id:         identity(),
			wantName:   "dex:alice@example.com",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   -1,
		},
		{
			rule:  "group order: claim groups, then the mapUsers entry's, then each mapGroups entry's in file order",
			users: "- subject: alice-sub\n  groups: [u1, u2]\n",
			// file order (everyone before developers) differs from the claim order
			groups:       "- group: everyone\n  groups: [g-everyone]\n- group: nobody\n  groups: [g-nobody]\n- group: developers\n  groups: [g-dev1, g-dev2]\n",
			id:           identity(),
			wantName:     "dex:alice@example.com",
			wantGroups:   []string{"dex:developers", "dex:everyone", "u1", "u2", "g-everyone", "g-dev1", "g-dev2"},
			wantUser:     0,
			wantGroupIdx: []int{0, 2},
		},
		{
			rule:         "duplicate groups: the first occurrence is kept",
			users:        "- subject: alice-sub\n  groups: [shared, dex:developers, u1]\n",
			groups:       "- group: developers\n  groups: [u1, shared, g1]\n- group: everyone\n  groups: [g1, g2]\n",
			id:           identity(),
			wantName:     "dex:alice@example.com",
			wantGroups:   []string{"dex:developers", "dex:everyone", "shared", "u1", "g1", "g2"},
			wantUser:     0,
			wantGroupIdx: []int{0, 1},
		},
		{
			rule:   "a group the token names twice matches its entry once",
			groups: "- group: developers\n  groups: [g-dev]\n",
			id: identity(func(id *authn.Identity) {
				id.Groups = []string{"developers", "everyone", "developers"}
			}),
			wantName:     "dex:alice@example.com",
			wantGroups:   []string{"dex:developers", "dex:everyone", "g-dev"},
			wantUser:     -1,
			wantGroupIdx: []int{0},
		},
		{
			rule:       "an admin-written entry may grant system:masters",
			users:      "- email: alice@example.com\n  username: alice\n  groups: [system:masters]\n",
			id:         identity(),
			wantName:   "alice",
			wantGroups: []string{"dex:developers", "dex:everyone", "system:masters"},
			wantUser:   0,
		},
		{
			rule:       "template oidc:{{email}}",
			users:      "- subject: alice-sub\n  username: oidc:{{email}}\n",
			id:         identity(),
			wantName:   "oidc:alice@example.com",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   0,
		},
		{
			rule:       "template {{preferred_username}}",
			users:      "- subject: alice-sub\n  username: \"{{preferred_username}}\"\n",
			id:         identity(),
			wantName:   "alice",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   0,
		},
		{
			rule:       "template with several placeholders",
			users:      "- subject: alice-sub\n  username: \"{{preferred_username}}@{{sub}}\"\n",
			id:         identity(),
			wantName:   "alice@alice-sub",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   0,
		},
		{
			rule:        "a placeholder whose claim is absent denies as mapping_failed",
			users:       "- subject: alice-sub\n  username: \"{{nickname}}\"\n",
			id:          identity(),
			wantUser:    0,
			wantReason:  authn.ReasonMapping,
			wantErrText: "mapUsers[0].username \"{{nickname}}\": placeholder {{nickname}}: the token has no nickname claim",
		},
		{
			rule:        "a placeholder whose claim is not a string denies as mapping_failed",
			users:       "- subject: alice-sub\n  username: \"u-{{age}}\"\n",
			id:          identity(),
			wantUser:    0,
			wantReason:  authn.ReasonMapping,
			wantErrText: "mapUsers[0].username \"u-{{age}}\": placeholder {{age}}: the token's age claim is a number, not a string",
		},
		{
			rule:        "a placeholder whose claim is a list denies as mapping_failed",
			users:       "- subject: alice-sub\n  username: \"{{groups}}\"\n",
			id:          identity(),
			wantUser:    0,
			wantReason:  authn.ReasonMapping,
			wantErrText: "is a list, not a string",
		},
		{
			rule:  "a username that starts with system: through the token's claims is denied as reserved_username",
			users: "- subject: alice-sub\n  username: \"{{preferred_username}}\"\n",
			id: identity(func(id *authn.Identity) {
				setClaim(id, "preferred_username", "system:admin")
			}),
			wantUser:    0,
			wantReason:  authn.ReasonReservedUsername,
			wantErrText: `renders "system:admin"`,
		},
		{
			rule:  "system: assembled from a literal part and a claim is denied: only the literal text before the first placeholder counts",
			users: "- subject: alice-sub\n  username: \"sys{{preferred_username}}\"\n",
			id: identity(func(id *authn.Identity) {
				setClaim(id, "preferred_username", "tem:masters")
			}),
			wantUser:   0,
			wantReason: authn.ReasonReservedUsername,
		},
		{
			rule:       "an admin-written literal system: prefix before a placeholder is allowed",
			users:      "- subject: alice-sub\n  username: \"system:node:{{sub}}\"\n",
			id:         identity(),
			wantName:   "system:node:alice-sub",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   0,
		},
		{
			rule:       "an admin-written literal system: username without placeholders is allowed",
			users:      "- subject: alice-sub\n  username: system:admin\n",
			id:         identity(),
			wantName:   "system:admin",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   0,
		},
		{
			rule:       "a mapping entry for another person does not apply",
			users:      "- subject: alice-sub\n  username: alice\n",
			id:         identity(bob),
			wantName:   "dex:alice@example.com",
			wantGroups: []string{"dex:developers", "dex:everyone"},
			wantUser:   -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			m := mustParse(t, tt.users, tt.groups)
			u, match, err := m.Apply(context.Background(), tt.id, tt.requireMatch)
			if got := reasonOf(t, err); got != tt.wantReason {
				t.Fatalf("reason = %q (err %v), want %q", got, err, tt.wantReason)
			}
			if tt.wantErrText != "" && !strings.Contains(err.Error(), tt.wantErrText) {
				t.Errorf("error %q does not contain %q", err, tt.wantErrText)
			}
			if match.User != tt.wantUser || !slices.Equal(match.Groups, tt.wantGroupIdx) {
				t.Errorf("match = %+v, want user %d groups %v", match, tt.wantUser, tt.wantGroupIdx)
			}
			if err != nil {
				return
			}
			if u.Name != tt.wantName {
				t.Errorf("name = %q, want %q", u.Name, tt.wantName)
			}
			if !slices.Equal(u.Groups, tt.wantGroups) {
				t.Errorf("groups = %q, want %q", u.Groups, tt.wantGroups)
			}
			if u.UID != tt.id.User.UID || len(u.Extra) != len(tt.id.User.Extra) {
				t.Errorf("uid/extra changed: %+v", u)
			}
		})
	}
}

// Rule: Apply never modifies id.User, which a cache shares between requests, and the
// returned groups never alias its slice.
func TestApplyDoesNotMutateIdentity(t *testing.T) {
	m := mustParse(t, "- subject: alice-sub\n  username: alice\n  groups: [u1]\n",
		"- group: developers\n  groups: [g1]\n")
	id := identity()
	// Spare capacity would let a careless append write into the shared backing array.
	claimGroups := make([]string, 2, 10)
	copy(claimGroups, []string{"dex:developers", "dex:everyone"})
	id.User.Groups = claimGroups
	before := slices.Clone(claimGroups[:cap(claimGroups)])
	for _, requireMatch := range []bool{false, true} {
		u, _, err := m.Apply(context.Background(), id, requireMatch)
		if err != nil {
			t.Fatal(err)
		}
		if id.User.Name != "dex:alice@example.com" || len(id.User.Groups) != 2 {
			t.Fatalf("id.User changed: %+v", id.User)
		}
		if !slices.Equal(claimGroups[:cap(claimGroups)], before) {
			t.Fatalf("the backing array of id.User.Groups changed: %q", claimGroups[:cap(claimGroups)])
		}
		u.Groups[0] = "overwritten"
		if id.User.Groups[0] != "dex:developers" {
			t.Fatal("the returned groups alias id.User.Groups")
		}
	}
	// An identity no entry matches gets a copy too.
	other := identity(func(id *authn.Identity) { id.Subject, id.Groups = "nobody", nil })
	u, _, err := m.Apply(context.Background(), other, false)
	if err != nil {
		t.Fatal(err)
	}
	u.Groups[0] = "overwritten"
	if other.User.Groups[0] != "dex:developers" {
		t.Fatal("the returned groups of an unmapped identity alias id.User.Groups")
	}
}

// Rule: a nil or empty mapping maps nothing, and denies everything when a match is required.
func TestApplyEmptyMapping(t *testing.T) {
	for _, m := range []*Mapping{nil, mustParse(t, "", "")} {
		u, match, err := m.Apply(context.Background(), identity(), false)
		if err != nil || u.Name != "dex:alice@example.com" || match.Matched() {
			t.Errorf("Apply = %+v, %+v, %v", u, match, err)
		}
		if _, _, err := m.Apply(context.Background(), identity(), true); reasonOf(t, err) != authn.ReasonNoMapping {
			t.Errorf("requireMatch on an empty mapping: err = %v, want no_mapping", err)
		}
	}
}

// Rule: first-occurrence dedup also holds for long group lists (which use a set).
func TestApplyManyGroups(t *testing.T) {
	var users strings.Builder
	users.WriteString("- subject: alice-sub\n  groups: [")
	for i := range 30 {
		if i > 0 {
			users.WriteString(", ")
		}
		users.WriteString("g" + string(rune('a'+i%10))) // ga..gj, three times each
	}
	users.WriteString(", dex:everyone]\n")
	m := mustParse(t, users.String(), "- group: developers\n  groups: [gj, gz, ga]\n")
	u, _, err := m.Apply(context.Background(), identity(), false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dex:developers", "dex:everyone", "ga", "gb", "gc", "gd", "ge", "gf", "gg", "gh", "gi", "gj", "gz"}
	if !slices.Equal(u.Groups, want) {
		t.Errorf("groups = %q, want %q", u.Groups, want)
	}
}
