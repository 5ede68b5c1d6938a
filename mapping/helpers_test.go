package mapping

import (
	"errors"
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

const (
	dex    = "https://dex.example.com/dex"
	google = "https://accounts.google.com"
)

var testIssuers = []string{dex, google}

// mustParse parses mapUsers and mapGroups YAML, failing the test on any problem.
func mustParse(t testing.TB, users, groups string) *Mapping {
	t.Helper()
	m, err := Parse(map[string]string{KeyUsers: users, KeyGroups: groups}, testIssuers)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

// identity is a verified token of alice from Dex; mods change it.
func identity(mods ...func(*authn.Identity)) *authn.Identity {
	id := &authn.Identity{
		Issuer:  dex,
		Subject: "alice-sub",
		Email:   "alice@example.com",
		Groups:  []string{"developers", "everyone"},
		User: authn.User{
			Name:   "dex:alice@example.com",
			UID:    "alice-sub",
			Groups: []string{"dex:developers", "dex:everyone"},
			Extra:  map[string][]string{"acr": {"1"}},
		},
	}
	id.SetClaims(map[string]any{
		"iss": dex, "sub": "alice-sub", "email": "alice@example.com",
		"preferred_username": "alice", "groups": []any{"developers", "everyone"},
		"age": 42.0,
	})
	for _, mod := range mods {
		mod(id)
	}
	return id
}

// setClaim changes a claim of a test identity.
func setClaim(id *authn.Identity, name string, value any) {
	claims, _ := id.Claims()
	claims[name] = value
}

func ptr[T any](v T) *T { return &v }

// reasonOf returns the denial reason of err, "" for nil.
func reasonOf(t testing.TB, err error) authn.Reason {
	t.Helper()
	if err == nil {
		return ""
	}
	var d *authn.Denial
	if !errors.As(err, &d) {
		t.Fatalf("error %v is not an *authn.Denial", err)
	}
	if d.Retryable {
		t.Errorf("denial %v is retryable; mapping denials are definitive", d)
	}
	return d.Reason
}
