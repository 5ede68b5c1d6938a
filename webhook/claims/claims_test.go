package claims_test

import (
	"context"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/claims"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
)

func ptr(s string) *string { return &s }

// entry is a jwt[] entry with username from email, groups prefixed "oidc:", uid from sub,
// edited by edit and validated (which compiles its expressions).
func mapper(t *testing.T, edit func(*config.JWTAuthenticator)) *claims.Mapper {
	t.Helper()
	e := config.JWTAuthenticator{
		Issuer: config.Issuer{URL: "https://issuer.example", Audiences: []string{"kubernetes"}},
		ClaimMappings: config.ClaimMappings{
			Username: config.PrefixedClaimOrExpression{Claim: "email", Prefix: ptr("")},
			Groups:   config.PrefixedClaimOrExpression{Claim: "groups", Prefix: ptr("oidc:")},
			UID:      config.ClaimOrExpression{Claim: "sub"},
		},
	}
	if edit != nil {
		edit(&e)
	}
	if errs := config.ValidateJWTAuthenticator(&e, field.NewPath("jwt").Index(0)); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	m, err := claims.NewMapper(e.Issuer.URL, e)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func alice(overrides map[string]any) map[string]any {
	c := map[string]any{"sub": "alice-sub", "email": "alice@example.com", "email_verified": true, "groups": []any{"dev", "ops"}}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// Each mapped field, by the rule of kube-apiserver's getUsername, getGroups, getUID and
// getExtra it follows (or the deliberate difference it makes).
func TestIdentity(t *testing.T) {
	for _, tc := range []struct {
		rule       string
		edit       func(*config.JWTAuthenticator)
		claims     map[string]any
		wantReason authn.Reason
		wantName   string
		wantGroups []string
		wantUID    string
		wantExtra  map[string][]string
	}{
		{rule: "getUsername: the claim, prefixed", claims: alice(nil), wantName: "alice@example.com", wantGroups: []string{"oidc:dev", "oidc:ops"}, wantUID: "alice-sub"},
		{rule: "getUsername: email with email_verified false is denied", claims: alice(map[string]any{"email_verified": false}), wantReason: authn.ReasonEmailNotVerified},
		{rule: "getUsername: email_verified that is not true counts as false", claims: alice(map[string]any{"email_verified": "true"}), wantReason: authn.ReasonEmailNotVerified},
		{rule: "getUsername: absent email_verified passes", claims: alice(map[string]any{"email_verified": nil}), wantName: "alice@example.com", wantGroups: []string{"oidc:dev", "oidc:ops"}, wantUID: "alice-sub"},
		{rule: "getUsername: the claim must be a string", claims: alice(map[string]any{"email": 5}), wantReason: authn.ReasonUsername},
		{rule: "difference: a system: username from a claim is denied", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Username = config.PrefixedClaimOrExpression{Claim: "sub", Prefix: ptr("")}
		}, claims: alice(map[string]any{"sub": "system:admin"}), wantReason: authn.ReasonReservedUsername},
		{rule: "getUsername: an expression", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Username = config.PrefixedClaimOrExpression{Expression: "'u:' + claims.sub"}
		}, claims: alice(nil), wantName: "u:alice-sub", wantGroups: []string{"oidc:dev", "oidc:ops"}, wantUID: "alice-sub"},
		{rule: "getGroups: a single string is one group", claims: alice(map[string]any{"groups": "dev"}), wantName: "alice@example.com", wantGroups: []string{"oidc:dev"}, wantUID: "alice-sub"},
		{rule: "getGroups: a non-string element is denied", claims: alice(map[string]any{"groups": []any{"dev", 1}}), wantReason: authn.ReasonGroups},
		{rule: "difference: system: groups from a claim are dropped", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Groups.Prefix = ptr("")
		}, claims: alice(map[string]any{"groups": []any{"dev", "system:masters"}}), wantName: "alice@example.com", wantGroups: []string{"dev"}, wantUID: "alice-sub"},
		{rule: "getGroups: an expression, no prefix", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Groups = config.PrefixedClaimOrExpression{Expression: "claims.groups"}
		}, claims: alice(nil), wantName: "alice@example.com", wantGroups: []string{"dev", "ops"}, wantUID: "alice-sub"},
		{rule: "getUID: the claim must be a string", claims: alice(map[string]any{"sub": nil}), wantReason: authn.ReasonUID},
		{rule: "getExtra: jti is the credential ID, an expression adds a key", edit: func(e *config.JWTAuthenticator) {
			e.ClaimMappings.Extra = []config.ExtraMapping{{Key: "example.com/tenant", ValueExpression: "'acme'"}, {Key: "example.com/none", ValueExpression: "''"}}
		}, claims: alice(map[string]any{"jti": "j1"}), wantName: "alice@example.com", wantGroups: []string{"oidc:dev", "oidc:ops"}, wantUID: "alice-sub",
			wantExtra: map[string][]string{claims.CredentialIDKey: {"JTI=j1"}, "example.com/tenant": {"acme"}}},
		{rule: "claim validation rule: the claim must be the required string", edit: func(e *config.JWTAuthenticator) {
			e.ClaimValidationRules = []config.ClaimValidationRule{{Claim: "hd", RequiredValue: "example.com"}}
		}, claims: alice(nil), wantReason: authn.ReasonClaimRule},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			id, err := mapper(t, tc.edit).Identity(context.Background(), tc.claims)
			if tc.wantReason != "" {
				d := authn.AsDenial(err)
				if d == nil || d.Reason != tc.wantReason {
					t.Fatalf("want %q, got %v", tc.wantReason, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u := id.User
			if u.Name != tc.wantName || !slices.Equal(u.Groups, tc.wantGroups) || u.UID != tc.wantUID || len(u.Extra) != len(tc.wantExtra) {
				t.Fatalf("got %+v", u)
			}
			for k, v := range tc.wantExtra {
				if !slices.Equal(u.Extra[k], v) {
					t.Fatalf("extra %q = %q, want %q", k, u.Extra[k], v)
				}
			}
		})
	}
}

// The trace of `oidc-authenticator verify` names every mapped field, recorded in one place.
func TestIdentityTrace(t *testing.T) {
	var tr authn.Trace
	if _, err := mapper(t, nil).Identity(authn.WithTrace(context.Background(), &tr), alice(nil)); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range tr.Checks {
		names = append(names, c.Name)
	}
	if want := []string{"username", "groups", "uid", "extra"}; !slices.Equal(names, want) {
		t.Fatalf("traced %q, want %q", names, want)
	}
}
