package reference

import (
	"fmt"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

// TestGoogleIssuerLikeKubeAPIServer: a token whose iss is Google's legacy
// "accounts.google.com" for the configured https://accounts.google.com is accepted by both
// (go-oidc's special case); any other scheme-less form is another issuer for both.
func TestGoogleIssuerLikeKubeAPIServer(t *testing.T) {
	ti := issuertest.New(t)
	ti.NameIssuer("https://accounts.google.com")
	entry := ti.Config()
	entry.Issuer.URL = "https://accounts.google.com"
	entry.Issuer.DiscoveryURL = ti.URL + "/.well-known/openid-configuration"
	var rows [][3]string
	for _, iss := range []string{"https://accounts.google.com", "accounts.google.com", "accounts.google.com/", "http://accounts.google.com"} {
		t.Run(iss, func(t *testing.T) {
			token := ti.Token(t, map[string]any{"iss": iss})
			got, ref := ours(t, entry, token), theirs(t, entry, token)
			rows = append(rows, [3]string{"equal", "iss " + iss, "kube-apiserver: " + ref.String() + "; ours: " + got.String()})
			if !got.equal(ref) {
				t.Errorf("ours: %s (%s)\nkube-apiserver: %s (%s)", got, got.Err, ref, ref.Err)
			}
		})
	}
	logTable(t, rows)
}

// TestDistributedClaimsLikeKubeAPIServer: groups that the token leaves to a distributed claim
// source (a real HTTPS endpoint, served by the test issuer) come out the same as from
// kube-apiserver, and every way the source can be wrong denies the token in both.
func TestDistributedClaimsLikeKubeAPIServer(t *testing.T) {
	ti := issuertest.New(t)
	sourceJWT := func(overrides map[string]any) string { return ti.SourceJWT(t, overrides) }
	tests := []struct {
		name   string
		body   string
		status int
		claims map[string]any // overrides of the token's claims beside the distributed ones
	}{
		{name: "groups from the source", body: sourceJWT(nil)},
		{name: "a groups claim in the token wins over its source", body: sourceJWT(nil), claims: map[string]any{"groups": []any{"own"}}},
		{name: "the source's JWT has expired", body: sourceJWT(map[string]any{"exp": time.Now().Add(-time.Minute).Unix()})},
		{name: "the source's JWT is for another audience", body: sourceJWT(map[string]any{"aud": "someone-else"})},
		{name: "the source's JWT lacks the claim", body: sourceJWT(map[string]any{"groups": nil})},
		{name: "the source's answer is no JWT", body: "not a jwt"},
		{name: "the source's JWT has a bad signature", body: sourceJWT(nil)[:len(sourceJWT(nil))-4] + "AAAA"},
		{name: "the source fails", body: "oops", status: 500},
	}
	var rows [][3]string
	for n, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := fmt.Sprintf("/claims/%d", n)
			ti.ServeSource(path, tc.body, tc.status)
			claims := map[string]any{
				"groups":         nil,
				"_claim_names":   map[string]any{"groups": "src1"},
				"_claim_sources": map[string]any{"src1": map[string]any{"endpoint": ti.URL + path, "access_token": "access-1"}},
			}
			for k, v := range tc.claims {
				claims[k] = v
			}
			token := ti.Token(t, claims)
			entry := ti.Config()
			got, ref := ours(t, entry, token), theirs(t, entry, token)
			rows = append(rows, [3]string{"equal", tc.name, "kube-apiserver: " + ref.String() + "; ours: " + got.String()})
			if !got.equal(ref) {
				t.Errorf("ours: %s (%s)\nkube-apiserver: %s (%s)", got, got.Err, ref, ref.Err)
			}
		})
	}
	if ti.SourceState("/claims/0").Auth != "Bearer access-1" {
		t.Errorf("the source was sent %q; want the access token as bearer", ti.SourceState("/claims/0").Auth)
	}
	logTable(t, rows)
}
