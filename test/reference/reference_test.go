package reference

import (
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

func ptr(s string) *string { return &s }

// Edits of issuertest's entry (username from email, groups from groups with "oidc:", uid
// from sub).
func username(m config.PrefixedClaimOrExpression) func(*config.JWTAuthenticator) {
	return func(e *config.JWTAuthenticator) { e.ClaimMappings.Username = m }
}

func groups(m config.PrefixedClaimOrExpression) func(*config.JWTAuthenticator) {
	return func(e *config.JWTAuthenticator) { e.ClaimMappings.Groups = m }
}

func uid(m config.ClaimOrExpression) func(*config.JWTAuthenticator) {
	return func(e *config.JWTAuthenticator) { e.ClaimMappings.UID = m }
}

func extra(x ...config.ExtraMapping) func(*config.JWTAuthenticator) {
	return func(e *config.JWTAuthenticator) { e.ClaimMappings.Extra = x }
}

func claimRules(r ...config.ClaimValidationRule) func(*config.JWTAuthenticator) {
	return func(e *config.JWTAuthenticator) { e.ClaimValidationRules = r }
}

func userRules(r ...config.UserValidationRule) func(*config.JWTAuthenticator) {
	return func(e *config.JWTAuthenticator) { e.UserValidationRules = r }
}

func expr(s string) config.PrefixedClaimOrExpression {
	return config.PrefixedClaimOrExpression{Expression: s}
}

// TestSameUserAsKubeAPIServer authenticates each token with oidc-authenticator and with
// kube-apiserver's JWT authenticator for the same jwt[] entry; the outcomes must be equal, or
// follow from the apiserver's by a named, deliberate difference.
func TestSameUserAsKubeAPIServer(t *testing.T) {
	ti := issuertest.New(t)
	tests := []struct {
		name   string
		edits  []func(*config.JWTAuthenticator)
		claims map[string]any // overrides of issuertest's claims for alice; nil removes one
		diff   *difference
	}{
		// Claim forms: unchanged by this work, compared as a baseline.
		{name: "claims: username from email, groups prefixed, uid from sub"},
		{name: "claims: email_verified false denies a username from email", claims: map[string]any{"email_verified": false}},
		{name: "claims: email_verified absent passes", claims: map[string]any{"email_verified": nil}},
		{name: "claims: groups claim as a single string", claims: map[string]any{"groups": "developers"}},
		{name: "claims: groups claim absent", claims: map[string]any{"groups": nil}},
		{name: "claims: username prefix", edits: fns(username(config.PrefixedClaimOrExpression{Claim: "sub", Prefix: ptr("oidc:")}))},
		{name: "claims: required claim present", edits: fns(claimRules(config.ClaimValidationRule{Claim: "hd", RequiredValue: "example.com"})), claims: map[string]any{"hd": "example.com"}},
		{name: "claims: required claim absent", edits: fns(claimRules(config.ClaimValidationRule{Claim: "hd", RequiredValue: "example.com"}))},
		{name: "claims: jti becomes the credential-id extra", claims: map[string]any{"jti": "abc"}},
		{name: "claims: system: username from a claim", edits: fns(username(config.PrefixedClaimOrExpression{Claim: "sub", Prefix: ptr("")})), claims: map[string]any{"sub": "system:admin"}, diff: reservedNames},
		{name: "claims: system: groups from a claim", edits: fns(groups(config.PrefixedClaimOrExpression{Claim: "groups", Prefix: ptr("")})), claims: map[string]any{"groups": []any{"dev", "system:masters"}}, diff: reservedNames},

		// username.expression: a non-empty string, no prefix.
		{name: "username: claims.sub", edits: fns(username(expr("claims.sub")))},
		{name: "username: prefix written in the expression", edits: fns(username(expr("'oidc:' + claims.preferred_username"))), claims: map[string]any{"preferred_username": "alice"}},
		{name: "username: nested claim", edits: fns(username(expr("claims.profile.login"))), claims: map[string]any{"profile": map[string]any{"login": "alice"}}},
		{name: "username: optional claim with a default", edits: fns(username(expr("claims.?nickname.orValue(claims.sub)")))},
		{name: "username: strings extension", edits: fns(username(expr("claims.sub.upperAscii().replace('-', '_')")))},
		{name: "username: missing claim is an error", edits: fns(username(expr("claims.nickname")))},
		{name: "username: empty string", edits: fns(username(expr("claims.?nickname.orValue('')")))},
		{name: "username: not a string", edits: fns(username(expr("claims.groups")))},
		{name: "username: number claim", edits: fns(username(expr("claims.age"))), claims: map[string]any{"age": 42}},
		{name: "username: claims.email with email_verified rule, verified", edits: fns(username(expr("claims.email")), claimRules(config.ClaimValidationRule{Expression: "claims.?email_verified.orValue(true) == true", Message: "email not verified"}))},
		{name: "username: claims.email with email_verified rule, unverified", edits: fns(username(expr("claims.email")), claimRules(config.ClaimValidationRule{Expression: "claims.?email_verified.orValue(true) == true", Message: "email not verified"})), claims: map[string]any{"email_verified": false}},
		{name: "username: email_verified read in the username itself", edits: fns(username(expr("claims.email_verified ? claims.email : 'unverified:' + claims.sub"))), claims: map[string]any{"email_verified": false}},
		{name: "username: system: from an expression", edits: fns(username(expr("'system:' + claims.sub"))), diff: reservedNames},
		{name: "username: escaped claim name", edits: fns(username(expr("claims.login__dot__name"))), claims: map[string]any{"login.name": "alice"}},
		{name: "username: claim name by index", edits: fns(username(expr("claims['https://example.com/login']"))), claims: map[string]any{"https://example.com/login": "alice"}},

		// groups.expression: a string, a list of strings or null.
		{name: "groups: nested list", edits: fns(groups(expr("claims.realm_access.roles"))), claims: map[string]any{"realm_access": map[string]any{"roles": []any{"viewer", "editor"}}}},
		{name: "groups: a nested list mapped (no dyn() needed below the first level)", edits: fns(groups(expr("claims.realm_access.roles.map(r, 'kc:' + r)"))), claims: map[string]any{"realm_access": map[string]any{"roles": []any{"viewer"}}}},
		{name: "groups: mapped with a prefix (dyn() makes a claim a comprehension's range)", edits: fns(groups(expr("dyn(claims.groups).map(g, 'oidc:' + g)")))},
		{name: "groups: filtered", edits: fns(groups(expr("dyn(claims.groups).filter(g, g.startsWith('dev'))")))},
		{name: "groups: from a comma-separated claim", edits: fns(groups(expr("claims.roles.split(',')"))), claims: map[string]any{"roles": "a,b,c"},
			diff: accepted(anyStringList, outcome{OK: true, Name: alice.Name, UID: alice.UID, Groups: []string{"a", "b", "c"}})},
		{name: "groups: a single string", edits: fns(groups(expr("claims.hd"))), claims: map[string]any{"hd": "example.com"}},
		{name: "groups: null means none", edits: fns(groups(expr("null")))},
		{name: "groups: empty list means none", edits: fns(groups(expr("claims.?roles.orValue([])")))},
		{name: "groups: empty string means none", edits: fns(groups(expr("''")))},
		{name: "groups: empty elements dropped", edits: fns(groups(expr("claims.groups"))), claims: map[string]any{"groups": []any{"a", "", "b"}}},
		{name: "groups: a list of numbers is an error", edits: fns(groups(expr("claims.ids"))), claims: map[string]any{"ids": []any{1, 2}}},
		{name: "groups: a map is an error", edits: fns(groups(expr("claims.realm_access"))), claims: map[string]any{"realm_access": map[string]any{"roles": []any{"a"}}}},
		{name: "groups: system: from an expression", edits: fns(groups(expr("claims.groups + ['system:masters']"))), diff: reservedNames},
		{name: "groups: conditional on a claim", edits: fns(groups(expr("claims.?hd.orValue('') == 'example.com' ? ['staff'] : []"))), claims: map[string]any{"hd": "example.com"}},

		// uid.expression: a string (empty allowed).
		{name: "uid: expression", edits: fns(uid(config.ClaimOrExpression{Expression: "'oidc-' + claims.sub"}))},
		{name: "uid: empty string is allowed", edits: fns(uid(config.ClaimOrExpression{Expression: "''"}))},
		{name: "uid: not a string", edits: fns(uid(config.ClaimOrExpression{Expression: "claims.iat"}))},

		// extra[].valueExpression: a string or list of strings; empty values leave the key out.
		{name: "extra: string and list", edits: fns(extra(
			config.ExtraMapping{Key: "example.com/tenant", ValueExpression: "claims.tenant"},
			config.ExtraMapping{Key: "example.com/roles", ValueExpression: "claims.realm_access.roles"},
		)), claims: map[string]any{"tenant": "acme", "realm_access": map[string]any{"roles": []any{"viewer"}}}},
		{name: "extra: empty value leaves the key out", edits: fns(extra(config.ExtraMapping{Key: "example.com/tenant", ValueExpression: "claims.?tenant.orValue('')"}))},
		{name: "extra: with jti", edits: fns(extra(config.ExtraMapping{Key: "example.com/sub", ValueExpression: "claims.sub"})), claims: map[string]any{"jti": "j-1"}},
		{name: "extra: not a string is an error", edits: fns(extra(config.ExtraMapping{Key: "example.com/iat", ValueExpression: "claims.iat"}))},

		// claimValidationRules[].expression: every rule must be true.
		{name: "claim rule: true", edits: fns(claimRules(config.ClaimValidationRule{Expression: "claims.hd == 'example.com'"})), claims: map[string]any{"hd": "example.com"}},
		{name: "claim rule: false", edits: fns(claimRules(config.ClaimValidationRule{Expression: "claims.hd == 'example.com'", Message: "wrong domain"})), claims: map[string]any{"hd": "evil.com"}},
		{name: "claim rule: error (missing claim) denies", edits: fns(claimRules(config.ClaimValidationRule{Expression: "claims.hd == 'example.com'"}))},
		{name: "claim rule: numbers are doubles", edits: fns(claimRules(config.ClaimValidationRule{Expression: "claims.exp - claims.iat <= 3600"}))},
		{name: "claim rule: claim and expression rules together", edits: fns(claimRules(
			config.ClaimValidationRule{Claim: "hd", RequiredValue: "example.com"},
			config.ClaimValidationRule{Expression: "'admins' in claims.groups"},
		)), claims: map[string]any{"hd": "example.com"}},
		{name: "claim rule: audience list", edits: fns(claimRules(config.ClaimValidationRule{Expression: "claims.aud == 'kubernetes' || 'kubernetes' in claims.aud"}))},
		{name: "claim rule: two-variable comprehension", edits: fns(claimRules(config.ClaimValidationRule{Expression: "dyn(claims.groups).all(i, g, i < 5 && g != '')"}))},
		{name: "claim rule: presence of a nested claim", edits: fns(claimRules(config.ClaimValidationRule{Expression: "has(claims.realm_access.roles)"})), claims: map[string]any{"realm_access": map[string]any{}}},

		// Probes of the claims variable itself.
		// The claims variable itself: not a full CEL map, in kube-apiserver as here.
		{name: "claims: a comprehension ranges over names", edits: fns(claimRules(config.ClaimValidationRule{Expression: "claims.exists(k, k == 'hd')"})), claims: map[string]any{"hd": "x"},
			diff: accepted(claimNamesIterated, alice)},
		{name: "claims: a comprehension does not range over values", edits: fns(claimRules(config.ClaimValidationRule{Expression: "claims.exists(k, k == 'x')"})), claims: map[string]any{"hd": "x"},
			diff: refused(claimNamesIterated)},
		{name: "claims: size(claims) is an error", edits: fns(claimRules(config.ClaimValidationRule{Expression: "size(claims) > 3"}))},
		{name: "claims: 'in' claims is an error (use has())", edits: fns(claimRules(config.ClaimValidationRule{Expression: "'hd' in claims"})), claims: map[string]any{"hd": "x"}},
		{name: "groups: lists extension", edits: fns(groups(expr("dyn(claims.groups).sort()")))},
		{name: "claims: groups claim null", claims: map[string]any{"groups": []any(nil)}, diff: refused(nullGroups)},
		{name: "claims: username claim empty", edits: fns(username(config.PrefixedClaimOrExpression{Claim: "sub", Prefix: ptr("")})), claims: map[string]any{"sub": ""}, diff: refused(emptyUsername)},

		// userValidationRules[].expression: over the final user.
		{name: "user rule: passes", edits: fns(userRules(config.UserValidationRule{Expression: "!user.username.startsWith('admin')"}))},
		{name: "user rule: fails", edits: fns(userRules(config.UserValidationRule{Expression: "!user.username.startsWith('alice')", Message: "no alice"}))},
		{name: "user rule: groups", edits: fns(userRules(config.UserValidationRule{Expression: "user.groups.all(g, g.startsWith('oidc:'))"}))},
		{name: "user rule: extra and uid", edits: fns(
			extra(config.ExtraMapping{Key: "example.com/tenant", ValueExpression: "'acme'"}),
			userRules(config.UserValidationRule{Expression: "user.extra['example.com/tenant'] == ['acme'] && user.uid == 'alice-sub'"}),
		)},
		{name: "user rule: all forms at once", edits: fns(
			username(expr("'oidc:' + claims.sub")),
			groups(expr("claims.groups")),
			uid(config.ClaimOrExpression{Expression: "claims.sub"}),
			claimRules(config.ClaimValidationRule{Expression: "claims.email_verified == true"}),
			userRules(config.UserValidationRule{Expression: "user.username.startsWith('oidc:')"}, config.UserValidationRule{Expression: "size(user.groups) == 2"}),
		)},
	}
	var rows [][3]string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entry := ti.Config()
			for _, edit := range tc.edits {
				edit(&entry)
			}
			token := ti.Token(t, tc.claims)
			got, ref := ours(t, entry, token), theirs(t, entry, token)
			want, verdict := ref, "equal"
			if tc.diff != nil {
				want = tc.diff.apply(ref)
				verdict = "differs"
				if want.equal(ref) {
					t.Errorf("the case is marked as a difference (%s) but the difference changes nothing", tc.diff.why)
				}
			}
			rows = append(rows, [3]string{verdict, tc.name, "kube-apiserver: " + ref.String() + "; ours: " + got.String()})
			if !got.equal(want) {
				t.Errorf("ours: %s (%s)\nkube-apiserver: %s (%s)\nwant: %s", got, got.Err, ref, ref.Err, want)
			}
		})
	}
	logTable(t, rows)
}

func fns(f ...func(*config.JWTAuthenticator)) []func(*config.JWTAuthenticator) { return f }
