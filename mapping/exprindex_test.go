package mapping

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// withoutIndex returns m with every expression entry evaluated for every token, as before
// the index: what the indexed mapping must give.
func withoutIndex(m *Mapping) *Mapping {
	c := *m
	for _, ix := range []*exprIndex{&c.userExpressions, &c.groupExpressions} {
		plain := exprIndex{all: ix.all}
		for pos := range ix.all {
			plain.rest = append(plain.rest, pos)
		}
		*ix = plain
	}
	return &c
}

// applyBoth maps id with m and with m unindexed, and fails unless both give the same user,
// entries, errors and denial.
func applyBoth(t *testing.T, m *Mapping, id *authn.Identity, requireMatch bool) Match {
	t.Helper()
	ctx := context.Background()
	u1, m1, err1 := m.Apply(ctx, id, requireMatch)
	u2, m2, err2 := withoutIndex(m).Apply(ctx, id, requireMatch)
	if fmt.Sprint(err1) != fmt.Sprint(err2) {
		t.Fatalf("indexed error %v, unindexed %v", err1, err2)
	}
	if !reflect.DeepEqual(u1, u2) {
		t.Fatalf("indexed user %+v, unindexed %+v", u1, u2)
	}
	if m1.User != m2.User || !reflect.DeepEqual(m1.Groups, m2.Groups) || !reflect.DeepEqual(m1.Errors, m2.Errors) {
		t.Fatalf("indexed match %+v, unindexed %+v", m1, m2)
	}
	if m1.evaluated > m2.evaluated {
		t.Fatalf("the index evaluated %d expressions, more than the %d of evaluating every entry", m1.evaluated, m2.evaluated)
	}
	return m1
}

// Each indexed shape, and the claim values the index cannot decide (absent, of another type),
// give what evaluating every entry gives: the same entries and the same errors.
func TestExpressionIndexMatchesEvaluatingEveryEntry(t *testing.T) {
	users := `
- expression: "claims.sub == 'bob-sub'"
  username: bob
- expression: "claims.?hd.orValue('') == 'example.com'"
  username: hd-user
- expression: "claims.?email_verified.orValue(true) == true && claims.email == 'alice@example.com'"
  username: alice
- expression: "claims.preferred_username.startsWith('ali')"
  username: by-prefix
`
	groups := `
- expression: "'developers' in claims.groups"
  groups: [devs]
- expression: "'ops' in claims.?roles.orValue([])"
  groups: [ops]
- expression: "claims['team'] == 'blue'"
  groups: [blue]
- expression: "claims.team == 'red' && claims.nosuch == 'x'"
  groups: [red]
- expression: "claims.?hd.orValue('none') == 'none'"
  groups: [no-hd]
- expression: "claims.age > 40.0"
  groups: [old]
`
	m := mustParse(t, users, groups)
	tests := []struct {
		name string
		mod  func(*authn.Identity)
	}{
		{"as issued", func(*authn.Identity) {}},
		{"another subject", func(id *authn.Identity) { setClaim(id, "sub", "bob-sub") }},
		{"hd matches", func(id *authn.Identity) { setClaim(id, "hd", "example.com") }},
		{"hd another", func(id *authn.Identity) { setClaim(id, "hd", "other.com") }},
		{"hd a number", func(id *authn.Identity) { setClaim(id, "hd", 3.0) }},
		{"hd null", func(id *authn.Identity) { setClaim(id, "hd", nil) }},
		{"email unverified", func(id *authn.Identity) { setClaim(id, "email_verified", false) }},
		{"no email", func(id *authn.Identity) { claims, _ := id.Claims(); delete(claims, "email") }},
		{"email a list", func(id *authn.Identity) { setClaim(id, "email", []any{"alice@example.com"}) }},
		{"groups a string", func(id *authn.Identity) { setClaim(id, "groups", "developers") }},
		{"groups a map", func(id *authn.Identity) { setClaim(id, "groups", map[string]any{"developers": true}) }},
		{"groups mixed", func(id *authn.Identity) { setClaim(id, "groups", []any{1.0, nil, "developers", []any{"ops"}}) }},
		{"no groups", func(id *authn.Identity) { claims, _ := id.Claims(); delete(claims, "groups") }},
		{"roles ops", func(id *authn.Identity) { setClaim(id, "roles", []any{"ops"}) }},
		{"roles a string", func(id *authn.Identity) { setClaim(id, "roles", "ops") }},
		{"team blue", func(id *authn.Identity) { setClaim(id, "team", "blue") }},
		{"team red", func(id *authn.Identity) { setClaim(id, "team", "red") }},
		{"team a list", func(id *authn.Identity) { setClaim(id, "team", []any{"blue"}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, requireMatch := range []bool{false, true} {
				applyBoth(t, m, identity(tc.mod), requireMatch)
			}
		})
	}
}

// A randomized comparison: mappings of random shapes over a few claims and values, tokens
// with random claims of every JSON type; the index must never change the outcome.
func TestExpressionIndexRandomized(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 2))
	values := []string{"a", "b", "c", ""}
	claimNames := []string{"hd", "team", "groups", "org.unit"}
	ref := func(name string) string {
		switch rng.IntN(3) {
		case 0:
			return "claims['" + name + "']"
		case 1:
			return "claims." + strings.ReplaceAll(name, ".", "__dot__")
		}
		return "claims.?" + strings.ReplaceAll(name, ".", "__dot__") + ".orValue('" + values[rng.IntN(len(values))] + "')"
	}
	condition := func() string {
		name, v := claimNames[rng.IntN(len(claimNames))], values[rng.IntN(len(values))]
		var c string
		switch rng.IntN(6) {
		case 0, 1:
			c = ref(name) + " == '" + v + "'"
		case 2:
			c = "'" + v + "' == " + ref(name)
		case 3:
			c = "'" + v + "' in claims." + strings.ReplaceAll(name, ".", "__dot__")
		case 4:
			c = "'" + v + "' in claims.?" + strings.ReplaceAll(name, ".", "__dot__") + ".orValue([])"
		default:
			c = "string(" + ref(name) + ").size() < 2"
		}
		if rng.IntN(3) == 0 {
			c = "claims.?age.orValue(0.0) > 10.0 && " + c
		}
		return c
	}
	claimValue := func() any {
		switch rng.IntN(7) {
		case 0:
			return nil
		case 1:
			return 1.0
		case 2:
			return map[string]any{values[rng.IntN(len(values))]: true}
		case 3, 4:
			var l []any
			for range rng.IntN(4) {
				if rng.IntN(4) == 0 {
					l = append(l, 2.0)
				} else {
					l = append(l, values[rng.IntN(len(values))])
				}
			}
			return l
		}
		return values[rng.IntN(len(values))]
	}
	for round := range 100 {
		var users, groups strings.Builder
		seen := map[string]bool{}
		for i := range 12 {
			c := condition()
			if seen[c] {
				continue // a duplicate is refused
			}
			seen[c] = true
			if i%2 == 0 {
				fmt.Fprintf(&users, "- expression: %q\n  username: u%d\n", c, i)
			} else {
				fmt.Fprintf(&groups, "- expression: %q\n  groups: [g%d]\n", c, i)
			}
		}
		m := mustParse(t, users.String(), groups.String())
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			for range 20 {
				id := identity(func(id *authn.Identity) {
					claims, _ := id.Claims()
					for _, name := range append(claimNames, "age") {
						if rng.IntN(4) == 0 {
							delete(claims, name)
						} else if name == "age" {
							claims[name] = float64(rng.IntN(20))
						} else {
							claims[name] = claimValue()
						}
					}
				})
				applyBoth(t, m, id, false)
			}
		})
	}
}

// A miss evaluates only the entries the index cannot rule out: with 1,000 entries, of which
// 995 compare the subject, a token evaluates the 5 others and the one with its subject.
func TestExpressionIndexEvaluationsOnAMiss(t *testing.T) {
	var groups strings.Builder
	for i := range 995 {
		fmt.Fprintf(&groups, "- expression: \"claims.sub == 'user-%d'\"\n  groups: [g%d]\n", i, i)
	}
	for i := range 5 {
		fmt.Fprintf(&groups, "- expression: \"claims.age > %d.0\"\n  groups: [age%d]\n", 40+i, i)
	}
	var users strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&users, "- expression: \"'team-%d' in claims.groups\"\n  username: team-%d\n", i, i)
	}
	m := mustParse(t, users.String(), groups.String())
	id := identity(func(id *authn.Identity) {
		setClaim(id, "sub", "user-500")
		setClaim(id, "groups", []any{"team-7", "team-3"})
	})
	match := applyBoth(t, m, id, false)
	// mapUsers: team-3 and team-7 are candidates, team-3 comes first and is true (1).
	// mapGroups: user-500 and the 5 age entries (6).
	if match.evaluated != 7 {
		t.Errorf("evaluated %d expressions, want 7", match.evaluated)
	}
	if match.User != 3 || len(match.Groups) != 3 {
		t.Errorf("match %+v, want mapUsers[3] and mapGroups[500], [995], [996]", match)
	}
}
