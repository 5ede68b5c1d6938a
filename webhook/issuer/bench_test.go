package issuer_test

import (
	"context"
	"testing"

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
	for _, tc := range []struct{ name, kid, alg string }{
		{"RS256", issuertest.DefaultKeyID, "RS256"},
		{"ES256", "ec-1", "ES256"},
	} {
		raw := ti.Sign(b, tc.kid, tc.alg, ti.Claims(nil))
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
	}
}
