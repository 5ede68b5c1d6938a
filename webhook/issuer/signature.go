package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"math/big"

	"github.com/go-jose/go-jose/v4"
)

// A publicKey is one signing key from the issuer's JWKS, as go-jose parsed it.
//
// A token is checked against it directly with the standard library (RFC 7518 §3.3-3.5):
// go-oidc's verifier would parse the token twice more with go-jose on every cache miss, which
// cost more than the signature itself (docs/performance.md).
type publicKey struct {
	id string
	// alg is the JWK's alg, "" when it names none: the key then signs with any algorithm of
	// its type. A key that names one is never used with another.
	alg string
	rsa *rsa.PublicKey
	ec  *ecdsa.PublicKey
}

// newPublicKey keeps a JWK that can check signatures: an RSA or ECDSA public key.
func newPublicKey(k jose.JSONWebKey) (publicKey, error) {
	pk := publicKey{id: k.KeyID, alg: k.Algorithm}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		pk.rsa = key
	case *ecdsa.PublicKey:
		pk.ec = key
	default:
		return publicKey{}, fmt.Errorf("key %q is a %T, which no accepted algorithm uses", k.KeyID, k.Key)
	}
	return pk, nil
}

// verifies reports whether sig is a valid signature of signingInput under alg with this key.
// Any mismatch (a key of another type or curve, a wrong length) is simply false.
func (k *publicKey) verifies(alg, signingInput string, sig []byte) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch alg {
	case "RS256", "RS384", "RS512":
		h, digest := digestOf(alg[2:], signingInput)
		return k.rsa != nil && rsa.VerifyPKCS1v15(k.rsa, h, digest, sig) == nil
	case "PS256", "PS384", "PS512":
		h, digest := digestOf(alg[2:], signingInput)
		// As go-jose (and so kube-apiserver) does: any salt length.
		return k.rsa != nil && rsa.VerifyPSS(k.rsa, h, digest, sig, nil) == nil
	case "ES256":
		return k.verifiesECDSA(elliptic.P256(), "256", signingInput, sig)
	case "ES384":
		return k.verifiesECDSA(elliptic.P384(), "384", signingInput, sig)
	case "ES512":
		return k.verifiesECDSA(elliptic.P521(), "512", signingInput, sig)
	}
	return false
}

// verifiesECDSA checks a JWS ECDSA signature: R and S, each as long as the curve's order, one
// after the other (RFC 7518 §3.4).
func (k *publicKey) verifiesECDSA(curve elliptic.Curve, bits, signingInput string, sig []byte) bool {
	if k.ec == nil || k.ec.Curve != curve {
		return false
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return false
	}
	_, digest := digestOf(bits, signingInput)
	r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
	return ecdsa.Verify(k.ec, digest, r, s)
}

// digestOf hashes the signing input with SHA-256, SHA-384 or SHA-512, by the bits an
// algorithm name ends with.
func digestOf(bits, signingInput string) (crypto.Hash, []byte) {
	switch bits {
	case "384":
		sum := sha512.Sum384([]byte(signingInput))
		return crypto.SHA384, sum[:]
	case "512":
		sum := sha512.Sum512([]byte(signingInput))
		return crypto.SHA512, sum[:]
	default:
		sum := sha256.Sum256([]byte(signingInput))
		return crypto.SHA256, sum[:]
	}
}
