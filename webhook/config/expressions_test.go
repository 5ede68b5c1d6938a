package config_test

import (
	"strings"
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
)

// withJWT is a configuration whose only jwt[] entry has the given body under the issuer.
func withJWT(body string) string {
	return `
apiVersion: oidc-authenticator.io/v1alpha1
kind: AuthenticatorConfiguration
jwt:
- issuer:
    url: https://dex.example.com/dex
    audiences: [kubernetes]
` + body
}

// Every expression form of kube-apiserver's jwt[] schema is accepted and compiled once, at
// load time, into typed programs beside the entry.
func TestExpressionsCompiledAtLoad(t *testing.T) {
	cfg, err := config.Parse([]byte(withJWT(`
  claimValidationRules:
  - {claim: hd, requiredValue: example.com}
  - expression: claims.?email_verified.orValue(true) == true
    message: the email must be verified
  claimMappings:
    username: {expression: "claims.email"}
    groups: {expression: "dyn(claims.groups).map(g, 'oidc:' + g)"}
    uid: {expression: "claims.sub"}
    extra:
    - {key: example.com/tenant, valueExpression: "claims.?tenant.orValue('')"}
  userValidationRules:
  - expression: "!user.username.startsWith('admin')"
    message: admin names are reserved
`)))
	if err != nil {
		t.Fatal(err)
	}
	x := cfg.JWT[0].Expressions
	if x == nil || x.Username == nil || x.Groups == nil || x.UID == nil || len(x.Extra) != 1 ||
		len(x.ClaimValidationRules) != 1 || len(x.UserValidationRules) != 1 {
		t.Fatalf("compiled expressions: %+v", x)
	}
	if got := x.Username.Field(); got != "jwt[0].claimMappings.username.expression" {
		t.Fatalf("field %q", got)
	}
	if x.Extra[0].Key != "example.com/tenant" || x.UserValidationRules[0].Message != "admin names are reserved" {
		t.Fatalf("extra %+v, user rule %+v", x.Extra, x.UserValidationRules)
	}

	// Claim forms only: nothing is compiled, so the token path pays nothing for CEL.
	plain, err := config.Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if plain.JWT[0].Expressions != nil {
		t.Fatalf("claim forms compiled to %+v", plain.JWT[0].Expressions)
	}
}

// Each case breaks one of kube-apiserver's config-time rules for expressions
// (pkg/apis/apiserver/validation) and expects an error naming the field and, for compile
// and type errors, the expression.
func TestExpressionValidation(t *testing.T) {
	const username = `  claimMappings:
    username: {claim: sub, prefix: ""}
`
	tests := []struct {
		name string
		body string
		want []string
	}{
		{
			name: "username: claim xor expression",
			body: "  claimMappings:\n    username: {claim: sub, expression: claims.sub}\n",
			want: []string{"jwt[0].claimMappings.username: Invalid value", "claim and expression can't both be set"},
		},
		{
			name: "username: no prefix with an expression",
			body: "  claimMappings:\n    username: {expression: claims.sub, prefix: \"oidc:\"}\n",
			want: []string{"jwt[0].claimMappings.username.prefix: Invalid value: \"oidc:\"", "may not be specified when expression is set"},
		},
		{
			name: "username: claim or expression is required",
			body: "  claimMappings:\n    username: {}\n",
			want: []string{"jwt[0].claimMappings.username.claim: Required value", "claim or expression is required"},
		},
		{
			name: "groups: claim xor expression",
			body: username[:len(username)-1] + "\n    groups: {claim: groups, prefix: \"\", expression: claims.groups}\n",
			want: []string{"jwt[0].claimMappings.groups: Invalid value", "claim and expression can't both be set"},
		},
		{
			name: "groups: no prefix with an expression",
			body: username + "    groups: {expression: claims.groups, prefix: \"\"}\n",
			want: []string{"jwt[0].claimMappings.groups.prefix: Invalid value"},
		},
		{
			name: "uid: claim xor expression",
			body: username + "    uid: {claim: sub, expression: claims.sub}\n",
			want: []string{"jwt[0].claimMappings.uid: Invalid value", "claim and expression can't both be set"},
		},
		{
			name: "compile error names the field and the expression",
			body: "  claimMappings:\n    username: {expression: \"claims.sub +\"}\n",
			want: []string{`jwt[0].claimMappings.username.expression: Invalid value: "claims.sub +": compilation failed: ERROR: <input>:1:`},
		},
		{
			name: "undeclared variable",
			body: "  claimMappings:\n    username: {expression: \"claim.sub\"}\n",
			want: []string{`jwt[0].claimMappings.username.expression: Invalid value: "claim.sub"`, "undeclared reference to 'claim'"},
		},
		{
			name: "function kube-apiserver's environment has but cel-go alone does not",
			body: username + "    uid: {expression: \"url(claims.sub).getHost()\"}\n",
			want: []string{`jwt[0].claimMappings.uid.expression: Invalid value: "url(claims.sub).getHost()"`, "undeclared reference to 'url'"},
		},
		{
			name: "claim validation rule must be a bool (type error)",
			body: "  claimValidationRules:\n  - expression: claims.hd\n" + username,
			want: []string{`jwt[0].claimValidationRules[0].expression: Invalid value: "claims.hd": must evaluate to bool`},
		},
		{
			name: "claim validation rule: claim xor expression",
			body: "  claimValidationRules:\n  - {claim: hd, expression: \"claims.hd == 'x'\"}\n" + username,
			want: []string{"jwt[0].claimValidationRules[0]: Invalid value: \"hd\": claim and expression can't both be set"},
		},
		{
			name: "claim validation rule: no requiredValue with an expression",
			body: "  claimValidationRules:\n  - {requiredValue: x, expression: \"claims.hd == 'x'\"}\n" + username,
			want: []string{"jwt[0].claimValidationRules[0].requiredValue: Invalid value"},
		},
		{
			name: "claim validation rule: no duplicate expressions",
			body: "  claimValidationRules:\n  - expression: \"claims.hd == 'x'\"\n  - expression: \"claims.hd == 'x'\"\n" + username,
			want: []string{"jwt[0].claimValidationRules[1].expression: Duplicate value"},
		},
		{
			name: "extra: key must be domain-prefixed",
			body: username + "    extra:\n    - {key: tenant, valueExpression: claims.sub}\n",
			want: []string{"jwt[0].claimMappings.extra[0].key: Invalid value: \"tenant\""},
		},
		{
			name: "extra: key must be lowercase",
			body: username + "    extra:\n    - {key: example.com/Tenant, valueExpression: claims.sub}\n",
			want: []string{"jwt[0].claimMappings.extra[0].key: Invalid value: \"example.com/Tenant\": must be lowercase"},
		},
		{
			name: "extra: not under kubernetes.io",
			body: username + "    extra:\n    - {key: authentication.kubernetes.io/credential-id, valueExpression: claims.sub}\n",
			want: []string{"jwt[0].claimMappings.extra[0].key", "reserved for Kubernetes use"},
		},
		{
			name: "extra: not under k8s.io",
			body: username + "    extra:\n    - {key: k8s.io/team, valueExpression: claims.sub}\n",
			want: []string{"jwt[0].claimMappings.extra[0].key", "reserved for Kubernetes use"},
		},
		{
			name: "extra: keys unique",
			body: username + "    extra:\n    - {key: example.com/a, valueExpression: claims.sub}\n    - {key: example.com/a, valueExpression: claims.aud}\n",
			want: []string{"jwt[0].claimMappings.extra[1].key: Duplicate value: \"example.com/a\""},
		},
		{
			name: "extra: valueExpression required",
			body: username + "    extra:\n    - {key: example.com/a}\n",
			want: []string{"jwt[0].claimMappings.extra[0].valueExpression: Required value"},
		},
		{
			name: "claims.email in the username needs claims.email_verified somewhere",
			body: "  claimMappings:\n    username: {expression: claims.email}\n",
			want: []string{`jwt[0].claimMappings.username.expression: Invalid value: "claims.email": claims.email_verified must be used`},
		},
		{
			name: "user validation rule over user, not claims",
			body: username + "  userValidationRules:\n  - expression: \"claims.sub != ''\"\n",
			want: []string{`jwt[0].userValidationRules[0].expression: Invalid value: "claims.sub != ''"`, "undeclared reference to 'claims'"},
		},
		{
			name: "user validation rule: only the fields of kubernetes.UserInfo",
			body: username + "  userValidationRules:\n  - expression: \"user.name != ''\"\n",
			want: []string{`jwt[0].userValidationRules[0].expression`, "undefined field 'name'"},
		},
		{
			name: "user validation rule: expression required",
			body: username + "  userValidationRules:\n  - message: m\n",
			want: []string{"jwt[0].userValidationRules[0].expression: Required value"},
		},
		{
			name: "user validation rule: no duplicates",
			body: username + "  userValidationRules:\n  - expression: \"user.uid != ''\"\n  - expression: \"user.uid != ''\"\n",
			want: []string{"jwt[0].userValidationRules[1].expression: Duplicate value"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(withJWT(tc.body)))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// The forms kube-apiserver accepts for the email_verified rule: email_verified read by the
// username itself, by an extra, or by a claim validation rule.
func TestEmailVerifiedAccepted(t *testing.T) {
	for _, body := range []string{
		"  claimMappings:\n    username: {expression: \"claims.email_verified ? claims.email : claims.sub\"}\n",
		"  claimMappings:\n    username: {expression: claims.email}\n    extra:\n    - {key: example.com/verified, valueExpression: \"string(claims.?email_verified.orValue(false))\"}\n",
		"  claimValidationRules:\n  - expression: \"claims.?email_verified.orValue(true) == true\"\n  claimMappings:\n    username: {expression: claims.email}\n",
		"  claimValidationRules:\n  - expression: \"has(claims.email_verified)\"\n  claimMappings:\n    username: {expression: \"'oidc:' + claims.email\"}\n",
	} {
		if _, err := config.Parse([]byte(withJWT(body))); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}
