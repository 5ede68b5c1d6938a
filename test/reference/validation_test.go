package reference

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/apis/apiserver/validation"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
)

// TestSameConfigurationRules validates each jwt[] entry with oidc-authenticator and with
// kube-apiserver's validation (CompileAndValidateJWTAuthenticator): both accept it, or both
// refuse it with errors on the same fields.
func TestSameConfigurationRules(t *testing.T) {
	base := func() config.JWTAuthenticator {
		return config.JWTAuthenticator{
			Issuer: config.Issuer{URL: "https://issuer.example.com", Audiences: []string{"kubernetes"}},
			ClaimMappings: config.ClaimMappings{
				Username: config.PrefixedClaimOrExpression{Claim: "sub", Prefix: ptr("")},
			},
		}
	}
	tests := []struct {
		name string
		edit func(*config.JWTAuthenticator)
		// stricter, when set, says why we refuse an entry kube-apiserver accepts.
		stricter string
	}{
		{name: "claim forms", edit: func(*config.JWTAuthenticator) {}},
		{name: "every expression form", edit: func(e *config.JWTAuthenticator) {
			e.ClaimValidationRules = []config.ClaimValidationRule{{Expression: "claims.?email_verified.orValue(true) == true", Message: "m"}}
			e.ClaimMappings = config.ClaimMappings{
				Username: expr("claims.email"),
				Groups:   expr("dyn(claims.groups).map(g, 'oidc:' + g)"),
				UID:      config.ClaimOrExpression{Expression: "claims.sub"},
				Extra:    []config.ExtraMapping{{Key: "example.com/tenant", ValueExpression: "claims.tenant"}},
			}
			e.UserValidationRules = []config.UserValidationRule{{Expression: "!user.username.startsWith('system:')", Message: "m"}}
		}},
		{name: "username claim and expression", edit: func(e *config.JWTAuthenticator) { e.ClaimMappings.Username.Expression = "claims.sub" }},
		{name: "username expression with a prefix", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Username = config.PrefixedClaimOrExpression{Expression: "claims.sub", Prefix: ptr("x:")}
		}},
		{name: "username claim without a prefix", edit: func(e *config.JWTAuthenticator) { e.ClaimMappings.Username.Prefix = nil }},
		{name: "username neither claim nor expression", edit: func(e *config.JWTAuthenticator) { e.ClaimMappings.Username = config.PrefixedClaimOrExpression{} }},
		{name: "groups claim and expression", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Groups = config.PrefixedClaimOrExpression{Claim: "groups", Prefix: ptr(""), Expression: "claims.groups"}
		}},
		{name: "groups expression with a prefix", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Groups = config.PrefixedClaimOrExpression{Expression: "claims.groups", Prefix: ptr("")}
		}},
		{name: "groups prefix alone", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Groups = config.PrefixedClaimOrExpression{Prefix: ptr("oidc:")}
		}, stricter: "a groups prefix without a groups claim is refused (it would do nothing); kube-apiserver ignores it"},
		{name: "uid claim and expression", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.UID = config.ClaimOrExpression{Claim: "sub", Expression: "claims.sub"}
		}},
		{name: "syntax error", edit: func(e *config.JWTAuthenticator) { e.ClaimMappings.Username = expr("claims.sub +") }},
		{name: "undeclared variable", edit: func(e *config.JWTAuthenticator) { e.ClaimMappings.Username = expr("claim.sub") }},
		{name: "comprehension over a claim without dyn()", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Groups = expr("claims.groups.map(g, g)")
		}},
		{name: "claim rule not a bool", edit: func(e *config.JWTAuthenticator) {
			e.ClaimValidationRules = []config.ClaimValidationRule{{Expression: "claims.hd"}}
		}},
		{name: "claim rule claim and expression", edit: func(e *config.JWTAuthenticator) {
			e.ClaimValidationRules = []config.ClaimValidationRule{{Claim: "hd", Expression: "claims.hd == 'x'"}}
		}},
		{name: "claim rule requiredValue with expression", edit: func(e *config.JWTAuthenticator) {
			e.ClaimValidationRules = []config.ClaimValidationRule{{RequiredValue: "x", Expression: "claims.hd == 'x'"}}
		}},
		{name: "claim rule message with claim", edit: func(e *config.JWTAuthenticator) {
			e.ClaimValidationRules = []config.ClaimValidationRule{{Claim: "hd", RequiredValue: "x", Message: "m"}}
		}},
		{name: "claim rules duplicate expression", edit: func(e *config.JWTAuthenticator) {
			e.ClaimValidationRules = []config.ClaimValidationRule{{Expression: "claims.hd == 'x'"}, {Expression: "claims.hd == 'x'"}}
		}},
		{name: "claim rules duplicate claim", edit: func(e *config.JWTAuthenticator) {
			e.ClaimValidationRules = []config.ClaimValidationRule{{Claim: "hd", RequiredValue: "x"}, {Claim: "hd", RequiredValue: "y"}}
		}},
		{name: "extra key without a domain", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Extra = []config.ExtraMapping{{Key: "tenant", ValueExpression: "claims.sub"}}
		}},
		{name: "extra key uppercase", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Extra = []config.ExtraMapping{{Key: "example.com/Tenant", ValueExpression: "claims.sub"}}
		}},
		{name: "extra key under kubernetes.io", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Extra = []config.ExtraMapping{{Key: "foo.kubernetes.io/x", ValueExpression: "claims.sub"}}
		}},
		{name: "extra key under k8s.io", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Extra = []config.ExtraMapping{{Key: "k8s.io/x", ValueExpression: "claims.sub"}}
		}},
		{name: "extra keys duplicate", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Extra = []config.ExtraMapping{{Key: "example.com/a", ValueExpression: "claims.sub"}, {Key: "example.com/a", ValueExpression: "claims.aud"}}
		}},
		{name: "extra without valueExpression", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Extra = []config.ExtraMapping{{Key: "example.com/a"}}
		}},
		{name: "claims.email without claims.email_verified", edit: func(e *config.JWTAuthenticator) { e.ClaimMappings.Username = expr("claims.email") }},
		{name: "claims.email with email_verified in an extra", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Username = expr("claims.email")
			e.ClaimMappings.Extra = []config.ExtraMapping{{Key: "example.com/v", ValueExpression: "string(claims.email_verified)"}}
		}},
		{name: "claims.email with email_verified by index only", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Username = expr("claims['email_verified'] == true ? claims.email : ''")
		}},
		{name: "claims.email in an extra only", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Extra = []config.ExtraMapping{{Key: "example.com/mail", ValueExpression: "claims.email"}}
		}},
		{name: "user rule over claims", edit: func(e *config.JWTAuthenticator) {
			e.UserValidationRules = []config.UserValidationRule{{Expression: "claims.sub != ''"}}
		}},
		{name: "user rule unknown field", edit: func(e *config.JWTAuthenticator) {
			e.UserValidationRules = []config.UserValidationRule{{Expression: "user.name != ''"}}
		}},
		{name: "user rule not a bool", edit: func(e *config.JWTAuthenticator) {
			e.UserValidationRules = []config.UserValidationRule{{Expression: "user.username"}}
		}},
		{name: "user rule empty", edit: func(e *config.JWTAuthenticator) {
			e.UserValidationRules = []config.UserValidationRule{{Message: "m"}}
		}},
		{name: "user rules duplicate", edit: func(e *config.JWTAuthenticator) {
			e.UserValidationRules = []config.UserValidationRule{{Expression: "user.uid != ''"}, {Expression: "user.uid != ''"}}
		}},
	}
	compiler := authenticationcel.NewDefaultCompiler()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entry := base()
			tc.edit(&entry)
			_, theirErrs := validation.CompileAndValidateJWTAuthenticator(compiler, toAPIServer(entry), nil)
			ourErrs := config.ValidateJWTAuthenticator(&entry, nil)
			theirs, ours := fields(theirErrs), fields(ourErrs)
			t.Logf("kube-apiserver: %v\nours: %v", theirErrs.ToAggregate(), ourErrs.ToAggregate())
			if tc.stricter != "" {
				if len(theirs) > 0 || len(ours) == 0 {
					t.Fatalf("marked stricter (%s), but kube-apiserver refuses on %q and we on %q", tc.stricter, theirs, ours)
				}
				return
			}
			if (len(theirs) == 0) != (len(ours) == 0) {
				t.Fatalf("kube-apiserver refuses on %q, we refuse on %q", theirs, ours)
			}
			for _, f := range theirs {
				if !slices.ContainsFunc(ours, func(o string) bool { return o == f || strings.HasPrefix(o, f+".") }) {
					t.Errorf("kube-apiserver refuses %s; we do not (ours: %q)", f, ours)
				}
			}
		})
	}
}

// fields lists the fields errors name.
func fields(errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Field)
	}
	return out
}
