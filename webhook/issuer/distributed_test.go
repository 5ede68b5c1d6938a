package issuer_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

// distributedToken is a token without claim whose value lives at the source path.
func distributedToken(t *testing.T, ti *issuertest.Issuer, claim, endpoint string) string {
	return ti.Token(t, map[string]any{
		claim:            nil,
		"_claim_names":   map[string]any{claim: "src1"},
		"_claim_sources": map[string]any{"src1": map[string]any{"endpoint": endpoint, "access_token": "access-1"}},
	})
}

// Distributed claims are resolved as kube-apiserver resolves them (its oidc.go claimResolver):
// the mapped claim, when the token lacks it and names a source, comes from the JWT that the
// source serves, which the issuer's own verifier must accept; and the token is denied when the
// source or its JWT is wrong. Entra ID sends groups this way for users in many groups.
func TestDistributedClaims(t *testing.T) {
	ti := issuertest.New(t)
	is := start(t, ti.Config(), issuer.Options{KeyRefreshInterval: time.Hour})
	sourceJWT := func(overrides map[string]any) string { return ti.SourceJWT(t, overrides) }

	t.Run("groups resolved from the source, with its access token, and remembered", func(t *testing.T) {
		ti.ServeSource("/claims/ok", sourceJWT(nil), 0)
		tok := distributedToken(t, ti, "groups", ti.URL+"/claims/ok")
		for range 2 {
			id, err := verify(t, is, tok)
			if err != nil {
				t.Fatalf("want accepted, got %v", err)
			}
			if want := []string{"oidc:g1", "oidc:g2"}; !slices.Equal(id.User.Groups, want) {
				t.Fatalf("groups %q, want %q", id.User.Groups, want)
			}
		}
		if s := ti.SourceState("/claims/ok"); s.Auth != "Bearer access-1" || s.Hits != 1 {
			t.Fatalf("source saw %q in %d requests; want the access token once (then cached)", s.Auth, s.Hits)
		}
	})
	t.Run("username resolved too", func(t *testing.T) {
		ti.ServeSource("/claims/user", sourceJWT(nil), 0)
		id, err := verify(t, is, distributedToken(t, ti, "email", ti.URL+"/claims/user"))
		if err != nil || id.User.Name != "alice@example.com" {
			t.Fatalf("want alice@example.com, got %v, %v", id, err)
		}
	})
	t.Run("a claim in the token itself wins, and nothing is fetched", func(t *testing.T) {
		ti.ServeSource("/claims/unused", sourceJWT(nil), 0)
		tok := ti.Token(t, map[string]any{
			"_claim_names":   map[string]any{"groups": "src1"},
			"_claim_sources": map[string]any{"src1": map[string]any{"endpoint": ti.URL + "/claims/unused"}},
		})
		id, err := verify(t, is, tok)
		if err != nil || !slices.Equal(id.User.Groups, []string{"oidc:developers", "oidc:admins"}) || ti.SourceState("/claims/unused").Hits != 0 {
			t.Fatalf("got %v, %v, %d fetches", id, err, ti.SourceState("/claims/unused").Hits)
		}
	})

	denials := []struct {
		name      string
		body      string
		status    int
		endpoint  string // default: the served path
		retryable bool
		wantMsg   string // in the denial, when set
	}{
		{name: "an expired JWT", body: sourceJWT(map[string]any{"exp": time.Now().Add(-time.Minute).Unix()})},
		{name: "a JWT for another audience", body: sourceJWT(map[string]any{"aud": "someone-else"})},
		{name: "a JWT of another issuer", body: sourceJWT(map[string]any{"iss": "https://elsewhere.example"})},
		{name: "a JWT without the claim", body: sourceJWT(map[string]any{"groups": nil})},
		{name: "a body that is no JWT", body: "not a jwt"},
		{name: "a JWT signed by no published key", body: sourceJWT(nil)[:len(sourceJWT(nil))-4] + "AAAA"},
		{name: "a source that fails (undecided: it may be back soon)", body: "oops", status: 500, retryable: true},
		{name: "a plain-HTTP endpoint, never followed", endpoint: "http://127.0.0.1:1/claims"},
		{name: "a redirect to plain HTTP, never followed (undecided, as a failing source)", body: "http://127.0.0.1:1/claims", status: 302, retryable: true, wantMsg: "not an https URL"},
	}
	for n, tc := range denials {
		t.Run("denied: "+tc.name, func(t *testing.T) {
			path := "/claims/deny-" + string(rune('a'+n))
			ti.ServeSource(path, tc.body, tc.status)
			endpoint := ti.URL + path
			if tc.endpoint != "" {
				endpoint = tc.endpoint
			}
			_, err := verify(t, is, distributedToken(t, ti, "groups", endpoint))
			var d *authn.Denial
			if !errors.As(err, &d) || d.Reason != authn.ReasonInvalidClaims || d.Retryable != tc.retryable {
				t.Fatalf("want a denial %q (retryable %v), got %v", authn.ReasonInvalidClaims, tc.retryable, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("the denial %q does not say %q", err, tc.wantMsg)
			}
			if tc.endpoint != "" && ti.SourceState(path).Hits != 0 {
				t.Fatal("the source was fetched")
			}
		})
	}
	t.Run("denied: _claim_names naming a source the token lacks", func(t *testing.T) {
		tok := ti.Token(t, map[string]any{"groups": nil, "_claim_names": map[string]any{"groups": "src9"},
			"_claim_sources": map[string]any{"src1": map[string]any{"endpoint": ti.URL + "/claims/ok"}}})
		if _, err := verify(t, is, tok); reasonOf(err) != authn.ReasonInvalidClaims {
			t.Fatalf("want %q, got %v", authn.ReasonInvalidClaims, err)
		}
	})
}
