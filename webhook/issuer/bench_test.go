package issuer_test

import (
	"context"
	"crypto"
	"fmt"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

// BenchmarkVerify measures one cold verification of a token, as a cache miss costs it:
// parsing, the signature, the claim checks and the claims → user step.
//
//	go test -run '^$' -bench Verify -benchmem ./webhook/issuer/
func BenchmarkVerify(b *testing.B) {
	ti := issuertest.New(b)
	ti.AddKey(b, "ec-1", "ES256")
	is := start(b, ti.Config(), issuer.Options{})
	ctx := context.Background()
	guids := make([]any, 1000)
	for i := range guids {
		guids[i] = fmt.Sprintf("%08x-4b1e-4c2d-9e7f-%012x", i, i*7919)
	}
	for _, tc := range []struct {
		name, kid, alg string
		groups         []any
	}{
		{"RS256", issuertest.DefaultKeyID, "RS256", nil},
		{"ES256", "ec-1", "ES256", nil},
		// A token from an IdP that sends every group's GUID (issue 17: cost that follows the
		// token's bytes).
		{"ES256/groups=1000", "ec-1", "ES256", guids},
	} {
		claims := ti.Claims(nil)
		if tc.groups != nil {
			claims["groups"] = tc.groups
		}
		raw := ti.Sign(b, tc.kid, tc.alg, claims)
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				tok, err := authn.ParseUnverified(raw)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := is.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The least any verifier on go-oidc does with the same token: go-oidc's verifier with
		// its own static key set and a decode of the claims, nothing of ours. What Verify
		// costs above it is ours.
		static := oidc.NewVerifier(ti.URL, &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{ti.Key(tc.kid).Public()}},
			&oidc.Config{ClientID: "kubernetes", SupportedSigningAlgs: issuer.SigningAlgorithms})
		b.Run(tc.name+"/go-oidc-alone", func(b *testing.B) {
			for b.Loop() {
				t, err := static.Verify(ctx, raw)
				if err != nil {
					b.Fatal(err)
				}
				var c map[string]any
				if err := t.Claims(&c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
