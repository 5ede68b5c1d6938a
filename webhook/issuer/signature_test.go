package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// Signatures made by go-jose (what kube-apiserver verifies with) check out with publicKey for
// every accepted algorithm (RFC 7518 §3.3-3.5), and nothing else does.
func TestPublicKeyVerifies(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKeys := map[string]*ecdsa.PrivateKey{}
	for alg, curve := range map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()} {
		if ecKeys[alg], err = ecdsa.GenerateKey(curve, rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	signer := func(alg string) crypto.Signer {
		if k, ok := ecKeys[alg]; ok {
			return k
		}
		return rsaKey
	}
	public := func(alg, jwkAlg string) publicKey {
		k, err := newPublicKey(jose.JSONWebKey{Key: signer(alg).Public(), KeyID: "k", Algorithm: jwkAlg})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, alg := range SigningAlgorithms {
		tok := signed(t, alg, signer(alg))
		t.Run(alg, func(t *testing.T) {
			k := public(alg, "")
			if !k.verifies(tok.Algorithm, tok.SigningInput(), tok.Signature) {
				t.Fatal("a valid signature does not verify")
			}
			pinned := public(alg, alg)
			if !pinned.verifies(tok.Algorithm, tok.SigningInput(), tok.Signature) {
				t.Fatal("a key whose JWK names the token's alg does not verify it")
			}
		})
	}

	rs := signed(t, "RS256", rsaKey)
	es := signed(t, "ES256", ecKeys["ES256"])
	tests := []struct {
		name string
		key  publicKey
		tok  *authn.Unverified
		alg  string
	}{
		{"an RSA signature relabelled PS256 (PKCS#1 v1.5 is not PSS)", public("RS256", ""), rs, "PS256"},
		{"an RSA signature relabelled RS384 (another hash)", public("RS256", ""), rs, "RS384"},
		{"a key whose JWK alg is RS384 is not used for RS256", public("RS256", "RS384"), rs, "RS256"},
		{"an RSA signature checked as ES256", public("RS256", ""), rs, "ES256"},
		{"an ES256 signature checked with an RSA key", public("RS256", ""), es, "ES256"},
		{"an ES256 signature checked as ES384 with a P-256 key", public("ES256", ""), es, "ES384"},
		{"an ES256 signature checked with a P-384 key", public("ES384", ""), es, "ES256"},
		{"an unaccepted algorithm", public("RS256", ""), rs, "HS256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.key.verifies(tc.alg, tc.tok.SigningInput(), tc.tok.Signature) {
				t.Fatal("verified")
			}
		})
	}

	t.Run("a signature one bit off", func(t *testing.T) {
		for _, tok := range []*authn.Unverified{rs, es} {
			sig := append([]byte(nil), tok.Signature...)
			sig[len(sig)/2] ^= 1
			k := public(tok.Algorithm, "")
			if k.verifies(tok.Algorithm, tok.SigningInput(), sig) {
				t.Fatalf("%s: verified", tok.Algorithm)
			}
		}
	})
	t.Run("an ECDSA signature of the wrong length", func(t *testing.T) {
		k := public("ES256", "")
		if k.verifies("ES256", es.SigningInput(), es.Signature[:63]) {
			t.Fatal("verified")
		}
	})
	t.Run("another signing input", func(t *testing.T) {
		other := strings.Replace(rs.SigningInput(), ".", ".e30", 1)
		k := public("RS256", "")
		if k.verifies("RS256", other, rs.Signature) {
			t.Fatal("verified")
		}
	})
}

func signed(t *testing.T, alg string, key crypto.Signer) *authn.Unverified {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign([]byte(`{"iss":"https://issuer.example","sub":"a","exp":4102444800}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := authn.ParseUnverified(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
