package expression_test

import (
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/expression"
)

// The condition shapes the identity mapping indexes, and shapes that look alike but are not
// equalities every true result requires.
func TestEquality(t *testing.T) {
	c := compiler(t)
	tests := []struct {
		expr string
		want expression.Equality
		ok   bool
	}{
		{"claims.sub == 'alice'", expression.Equality{Claim: "sub", Value: "alice"}, true},
		{"'alice' == claims.sub", expression.Equality{Claim: "sub", Value: "alice"}, true},
		{"claims['https://example.com/team'] == 'blue'", expression.Equality{Claim: "https://example.com/team", Value: "blue"}, true},
		{"claims.org__dot__team == 'blue'", expression.Equality{Claim: "org.team", Value: "blue"}, true},
		{"claims.?hd.orValue('') == 'example.com'", expression.Equality{Claim: "hd", Value: "example.com", HasDefault: true}, true},
		{"claims.?hd.orValue('x') == 'x'", expression.Equality{Claim: "hd", Value: "x", HasDefault: true, Default: "x"}, true},
		{"'admins' in claims.groups", expression.Equality{Claim: "groups", Value: "admins", In: true}, true},
		{"'admins' in claims.?groups.orValue([])", expression.Equality{Claim: "groups", Value: "admins", In: true, HasDefault: true}, true},
		{"claims.?email_verified.orValue(true) == true && claims.email == 'a@example.com'", expression.Equality{Claim: "email", Value: "a@example.com"}, true},
		{"claims.sub == 'a' && claims.hd == 'b'", expression.Equality{Claim: "sub", Value: "a"}, true},
		{"claims.hd.startsWith('x') && 'ops' in claims.groups", expression.Equality{Claim: "groups", Value: "ops", In: true}, true},

		{"claims.sub == 'a' || claims.sub == 'b'", expression.Equality{}, false}, // either may hold
		{"!(claims.sub == 'a')", expression.Equality{}, false},                   // negated
		{"claims.sub != 'a'", expression.Equality{}, false},                      // inequality
		{"claims.age == 42", expression.Equality{}, false},                       // not a string constant
		{"claims.realm.role == 'admin'", expression.Equality{}, false},           // nested claim
		{"claims[claims.k] == 'a'", expression.Equality{}, false},                // computed key
		{"claims.?hd.orValue(claims.sub) == 'a'", expression.Equality{}, false},  // computed default
		{"'a' in claims.?groups.orValue(['a'])", expression.Equality{}, false},   // default not empty
		{"claims.?hd.hasValue() && claims.hd == claims.sub", expression.Equality{}, false},
		{"has(claims.hd) == true", expression.Equality{}, false},                      // a presence test
		{"dyn(claims.groups).exists(g, g == 'admins')", expression.Equality{}, false}, // a comprehension
		{"claims.bad__x__name == 'a'", expression.Equality{}, false},                  // reads no claim
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			got, ok := claimsProgram(t, c, tc.expr, expression.Bool).Equality()
			if ok != tc.ok || got != tc.want {
				t.Fatalf("Equality() = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
