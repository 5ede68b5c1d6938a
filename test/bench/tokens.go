package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// audience is the client ID every server under test is configured with.
const audience = "kubernetes"

// mint signs n distinct id_tokens with key, in parallel on every core. Each carries the claims
// Dex puts in its id_tokens: a distinct sub and email, verified, two groups, a one-hour life.
func mint(iss string, key signingKey, n int) ([]string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: key.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", key.kid))
	if err != nil {
		return nil, err
	}
	return mintWith(n, func(i int) (string, error) { return sign(signer, claimsFor(iss, i)) })
}

// mintUnknownKid signs n tokens with key, each naming a different random kid that the issuer
// does not publish: a forger's flood, well formed and from a configured issuer.
func mintUnknownKid(iss string, key signingKey, n int) ([]string, error) {
	return mintWith(n, func(i int) (string, error) {
		kid := make([]byte, 20)
		_, _ = rand.Read(kid)
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: key.key},
			(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", hex.EncodeToString(kid)))
		if err != nil {
			return "", err
		}
		return sign(signer, claimsFor(iss, i))
	})
}

func mintWith(n int, one func(i int) (string, error)) ([]string, error) {
	out := make([]string, n)
	workers := runtime.GOMAXPROCS(0)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				tok, err := one(i)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				out[i] = tok
			}
		})
	}
	wg.Wait()
	return out, firstErr
}

func claimsFor(iss string, i int) map[string]any {
	now := time.Now()
	sub := make([]byte, 24)
	_, _ = rand.Read(sub)
	return map[string]any{
		"iss":            iss,
		"sub":            base64.RawURLEncoding.EncodeToString(sub),
		"aud":            audience,
		"exp":            now.Add(time.Hour).Unix(),
		"iat":            now.Unix(),
		"email":          fmt.Sprintf("user-%d@example.com", i),
		"email_verified": true,
		"groups":         []string{"developers", fmt.Sprintf("team-%d", i%50)},
		"name":           fmt.Sprintf("User %d", i),
	}
}

func sign(s jose.Signer, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// garbage returns n strings a confused or hostile client might send as bearer tokens: random
// printable text of 16 to 1,500 bytes, some with dots, some that look like a JWT's start.
func garbage(n int) []string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
	r := mathrand.New(mathrand.NewPCG(1, 2))
	out := make([]string, n)
	for i := range out {
		b := make([]byte, 16+r.IntN(1500))
		for j := range b {
			b[j] = alphabet[r.IntN(len(alphabet))]
		}
		if i%3 == 0 {
			copy(b, "eyJhbGciOiJSUzI1NiJ9.")
		}
		out[i] = string(b)
	}
	return out
}
