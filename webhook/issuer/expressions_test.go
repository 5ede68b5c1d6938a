package issuer_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/claims"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

// compiled validates cfg as Validate does, compiling its expressions.
func compiled(t *testing.T, cfg config.JWTAuthenticator) config.JWTAuthenticator {
	t.Helper()
	if errs := config.ValidateJWTAuthenticator(&cfg, field.NewPath("jwt").Index(0)); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	return cfg
}

// The expression forms of claimMappings and claimValidationRules (their semantics are
// compared with kube-apiserver's in test/reference); here: our denial reasons, messages that
// name the field and the expression, and the system: guard.
func TestExpressionForms(t *testing.T) {
	ti := issuertest.New(t)
	tests := []struct {
		name       string
		edit       func(*config.JWTAuthenticator)
		claims     map[string]any
		wantReason authn.Reason
		wantErr    string
		check      func(*testing.T, *authn.Identity)
	}{
		{
			name: "username, groups, uid and extra from expressions",
			edit: func(c *config.JWTAuthenticator) {
				c.ClaimMappings = config.ClaimMappings{
					Username: config.PrefixedClaimOrExpression{Expression: "'kc:' + claims.preferred_username"},
					Groups:   config.PrefixedClaimOrExpression{Expression: "claims.realm_access.roles"},
					UID:      config.ClaimOrExpression{Expression: "claims.sub"},
					Extra:    []config.ExtraMapping{{Key: "example.com/tenant", ValueExpression: "claims.tenant"}},
				}
			},
			claims: map[string]any{"preferred_username": "alice", "tenant": "acme", "jti": "j1",
				"realm_access": map[string]any{"roles": []any{"viewer", "system:masters"}}},
			check: func(t *testing.T, id *authn.Identity) {
				u := id.User
				if u.Name != "kc:alice" || u.UID != "alice-sub" || !slices.Equal(u.Groups, []string{"viewer"}) {
					t.Fatalf("user %+v", u)
				}
				// system: groups are dropped from the user but kept as raw values, which
				// the mapping's mapGroups entries match, as with a groups claim.
				if !slices.Equal(id.Groups, []string{"viewer", "system:masters"}) {
					t.Fatalf("raw groups %q", id.Groups)
				}
				if !slices.Equal(u.Extra["example.com/tenant"], []string{"acme"}) || !slices.Equal(u.Extra[claims.CredentialIDKey], []string{"JTI=j1"}) {
					t.Fatalf("extra %v", u.Extra)
				}
			},
		},
		{
			name: "a system: username from an expression is denied",
			edit: func(c *config.JWTAuthenticator) {
				c.ClaimMappings.Username = config.PrefixedClaimOrExpression{Expression: "claims.preferred_username"}
			},
			claims:     map[string]any{"preferred_username": "system:admin"},
			wantReason: authn.ReasonReservedUsername,
			wantErr:    `username "system:admin" from jwt[0].claimMappings.username.expression starts with "system:"`,
		},
		{
			name: "an evaluation error names the field and the expression",
			edit: func(c *config.JWTAuthenticator) {
				c.ClaimMappings.Username = config.PrefixedClaimOrExpression{Expression: "claims.nickname"}
			},
			wantReason: authn.ReasonUsername,
			wantErr:    "jwt[0].claimMappings.username.expression: expression 'claims.nickname' resulted in error: no such key: nickname",
		},
		{
			name: "an empty username",
			edit: func(c *config.JWTAuthenticator) {
				c.ClaimMappings.Username = config.PrefixedClaimOrExpression{Expression: "''"}
			},
			wantReason: authn.ReasonUsername,
			wantErr:    "gave an empty username",
		},
		{
			name: "a false claim rule says its message, in kube-apiserver's words",
			edit: func(c *config.JWTAuthenticator) {
				c.ClaimValidationRules = []config.ClaimValidationRule{{Expression: "claims.?hd.orValue('') == 'example.com'", Message: "only example.com accounts"}}
			},
			claims:     map[string]any{"hd": "gmail.com"},
			wantReason: authn.ReasonClaimRule,
			wantErr:    "jwt[0].claimValidationRules[0].expression: validation expression 'claims.?hd.orValue('') == 'example.com'' failed: only example.com accounts",
		},
		{
			name: "groups that are not strings",
			edit: func(c *config.JWTAuthenticator) {
				c.ClaimMappings.Groups = config.PrefixedClaimOrExpression{Expression: "claims.ids"}
			},
			claims:     map[string]any{"ids": []any{1, 2}},
			wantReason: authn.ReasonGroups,
			wantErr:    "jwt[0].claimMappings.groups.expression",
		},
		{
			name: "an extra that is not a string",
			edit: func(c *config.JWTAuthenticator) {
				c.ClaimMappings.Extra = []config.ExtraMapping{{Key: "example.com/iat", ValueExpression: "claims.iat"}}
			},
			wantReason: authn.ReasonExtra,
			wantErr:    "jwt[0].claimMappings.extra[0].valueExpression: expression 'claims.iat' must return a string or a list of strings, not double",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ti.Config()
			tc.edit(&cfg)
			is := start(t, compiled(t, cfg), issuer.Options{})
			id, err := verify(t, is, ti.Token(t, tc.claims))
			if tc.wantReason != "" {
				if reasonOf(err) != tc.wantReason || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v; want %s with %q", err, tc.wantReason, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, id)
		})
	}
}

// An entry whose expressions were never compiled is refused: its rules would be skipped.
func TestUncompiledExpressionsRefused(t *testing.T) {
	cfg := issuertest.New(t).Config()
	cfg.ClaimValidationRules = []config.ClaimValidationRule{{Expression: "false"}}
	if _, err := issuer.New(cfg, issuer.Options{}); err == nil || !strings.Contains(err.Error(), "not compiled") {
		t.Fatalf("got %v", err)
	}
}

// renamer is an identity mapping that gives every token the username admin.
type renamer struct{}

func (renamer) Map(_ context.Context, id *authn.Identity) (authn.User, error) {
	u := id.User
	u.Name = "admin"
	return u, nil
}

// userValidationRules judge the final user, after the identity mapping.
func TestUserRulesAfterMapping(t *testing.T) {
	ti := issuertest.New(t)
	cfg := ti.Config()
	cfg.UserValidationRules = []config.UserValidationRule{{Expression: "user.username != 'admin'", Message: "no admin"}}
	is := start(t, compiled(t, cfg), issuer.Options{})
	if !is.ValidatesUsers() {
		t.Fatal("ValidatesUsers is false")
	}
	for _, tc := range []struct {
		name   string
		mapper authn.Mapper
		ok     bool
	}{
		{"the claim-derived user passes", nil, true},
		{"the mapped user is judged", renamer{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := authn.New(map[string]authn.Verifier{is.URL(): is}, tc.mapper,
				authn.Options{UserValidators: map[string]authn.UserValidator{is.URL(): is}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.Authenticate(context.Background(), ti.Token(t, nil))
			if tc.ok != (err == nil) {
				t.Fatalf("err %v", err)
			}
			if !tc.ok && (reasonOf(err) != authn.ReasonUserRule || !strings.Contains(err.Error(), "jwt[0].userValidationRules[0].expression: validation expression 'user.username != 'admin'' failed: no admin")) {
				t.Fatalf("got %v", err)
			}
		})
	}
}
