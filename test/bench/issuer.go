package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/go-jose/go-jose/v4"
)

// issuer is the OIDC issuer every server under test trusts: discovery and a JWKS over HTTPS,
// with no cache headers (as the reference figures assume). It counts key set fetches
// and can publish a new key while a workload runs.
type issuer struct {
	URL string

	srv       *http.Server
	mu        sync.Mutex
	published []jose.JSONWebKey
	jwksHits  atomic.Int64
}

// signingKey is a private key with the kid and alg tokens name.
type signingKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func newSigningKey(kid string, alg jose.SignatureAlgorithm) (signingKey, error) {
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case jose.RS256:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		err = fmt.Errorf("no key type for %s", alg)
	}
	return signingKey{kid: kid, alg: alg, key: k}, err
}

func (k signingKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.key.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// startIssuer serves on a free loopback port with the given certificate.
func startIssuer(cert tls.Certificate, keys ...signingKey) (*issuer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	i := &issuer{URL: "https://" + ln.Addr().String()}
	for _, k := range keys {
		i.published = append(i.published, k.public())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{
			"issuer": i.URL, "jwks_uri": i.URL + "/keys",
			"authorization_endpoint": i.URL + "/auth", "token_endpoint": i.URL + "/token",
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		i.jwksHits.Add(1)
		i.mu.Lock()
		set := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), i.published...)}
		i.mu.Unlock()
		writeJSON(w, set)
	})
	i.srv = &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() { _ = i.srv.ServeTLS(ln, "", "") }()
	return i, nil
}

// publish adds a key to the JWKS, as an issuer rotating its keys does.
func (i *issuer) publish(k signingKey) {
	i.mu.Lock()
	i.published = append(i.published, k.public())
	i.mu.Unlock()
}

// unpublish removes the key with kid from the JWKS.
func (i *issuer) unpublish(kid string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	keep := i.published[:0]
	for _, k := range i.published {
		if k.KeyID != kid {
			keep = append(keep, k)
		}
	}
	i.published = keep
}

func (i *issuer) close() { _ = i.srv.Close() }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
