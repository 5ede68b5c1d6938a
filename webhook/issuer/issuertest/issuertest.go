// Package issuertest runs an in-process OIDC issuer over TLS for tests: it serves discovery
// and a JWKS, and signs tokens that no real identity provider would mint (expired, wrongly
// signed, with odd claims). Use a real Dex (test/dex) for everything else.
package issuertest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc/oidctest"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
)

// DefaultKeyID is the key every Issuer starts with.
const DefaultKeyID = "key-1"

// Issuer is a running test issuer.
type Issuer struct {
	URL   string
	CAPEM string

	srv   *httptest.Server
	mu    sync.Mutex
	oidc  oidctest.Server
	keys  map[string]crypto.Signer
	down  atomic.Bool
	jwks  atomic.Int64
	disco atomic.Int64

	// sources are distributed claim sources, by path: the body each answers, and the
	// Authorization header each was last sent.
	sources map[string]*Source
	// named is the issuer the discovery document names instead of URL (see NameIssuer).
	named string
}

// Source is a distributed claim endpoint served by the issuer.
type Source struct {
	Body   string
	Status int
	// Auth is the Authorization header of the last request; Hits counts the requests.
	Auth string
	Hits int
}

// New starts an issuer with one RS256 key, DefaultKeyID; it stops when the test ends.
func New(t testing.TB) *Issuer {
	t.Helper()
	i := &Issuer{keys: map[string]crypto.Signer{}, sources: map[string]*Source{}}
	i.srv = httptest.NewTLSServer(http.HandlerFunc(i.serve))
	t.Cleanup(i.srv.Close)
	i.URL = i.srv.URL
	i.oidc.SetIssuer(i.URL)
	i.CAPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.srv.Certificate().Raw}))
	i.AddKey(t, DefaultKeyID, "RS256")
	return i
}

func (i *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	if i.down.Load() {
		http.Error(w, "issuer is down", http.StatusServiceUnavailable)
		return
	}
	i.mu.Lock()
	src, isSource := i.sources[r.URL.Path]
	if isSource {
		src.Auth, src.Hits = r.Header.Get("Authorization"), src.Hits+1
		status, body := src.Status, src.Body
		i.mu.Unlock()
		if status >= 300 && status < 400 {
			http.Redirect(w, r, body, status) // a redirect's body is where it leads
			return
		}
		if status != 0 {
			w.WriteHeader(status)
		}
		_, _ = w.Write([]byte(body))
		return
	}
	named := i.named
	i.mu.Unlock()
	if named != "" && strings.HasSuffix(r.URL.Path, "/openid-configuration") {
		i.disco.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": named, "jwks_uri": i.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
		})
		return
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/keys"):
		i.jwks.Add(1)
	case strings.HasSuffix(r.URL.Path, "/openid-configuration"):
		i.disco.Add(1)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.oidc.ServeHTTP(w, r)
}

// AddKey creates and publishes a key for alg (RS*, PS*: RSA-2048; ES256/384/512: ECDSA).
func (i *Issuer) AddKey(t testing.TB, kid, alg string) {
	t.Helper()
	var (
		key crypto.Signer
		err error
	)
	switch alg {
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	default:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys[kid] = key
	i.oidc.PublicKeys = append(i.oidc.PublicKeys, oidctest.PublicKey{PublicKey: key.Public(), KeyID: kid, Algorithm: alg})
}

// NameIssuer makes the discovery document name issuer (e.g. https://accounts.google.com)
// while the keys stay here: configure the issuer with a discoveryURL pointing here.
func (i *Issuer) NameIssuer(issuer string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.named = issuer
}

// ReplaceKey creates a new key under an existing kid and publishes it instead of the old one,
// as an issuer does that rotates a key without changing its ID.
func (i *Issuer) ReplaceKey(t testing.TB, kid, alg string) {
	t.Helper()
	i.mu.Lock()
	kept := i.oidc.PublicKeys[:0]
	for _, k := range i.oidc.PublicKeys {
		if k.KeyID != kid {
			kept = append(kept, k)
		}
	}
	i.oidc.PublicKeys = kept
	i.mu.Unlock()
	i.AddKey(t, kid, alg)
}

// ServeSource serves a distributed claim source at path (answering body with status, 0 for
// 200; for a 3xx status, body is where it redirects) and returns it, to read what it was sent;
// its URL is i.URL+path.
func (i *Issuer) ServeSource(path, body string, status int) *Source {
	i.mu.Lock()
	defer i.mu.Unlock()
	s := &Source{Body: body, Status: status}
	i.sources[path] = s
	return s
}

// SourceJWT is what a distributed claim source of this issuer answers for alice: a JWT with
// groups g1 and g2 and her email, valid for an hour, with overrides applied (nil removes a
// claim).
func (i *Issuer) SourceJWT(t testing.TB, overrides map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": i.URL, "aud": "kubernetes", "sub": "alice-sub",
		"exp": time.Now().Add(time.Hour).Unix(), "groups": []any{"g1", "g2"}, "email": "alice@example.com"}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return i.Sign(t, DefaultKeyID, "RS256", c)
}

// SourceState returns a copy of the source at path, read under the issuer's lock.
func (i *Issuer) SourceState(path string) Source {
	i.mu.Lock()
	defer i.mu.Unlock()
	return *i.sources[path]
}

// SignRaw signs a token whose header is the given JSON text, exactly as written (to test
// how headers are read), with the RSA key kid and RS256.
func (i *Issuer) SignRaw(t testing.TB, kid, header string, claims map[string]any) string {
	t.Helper()
	key, ok := i.Key(kid).(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("no RSA key %q", kid)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("marshal claims: %v", err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(b)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return input + "." + enc.EncodeToString(sig)
}

// RemoveKeys stops publishing every key (the issuer "rotated" them away).
func (i *Issuer) RemoveKeys() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.oidc.PublicKeys = nil
}

// Key returns the private key kid.
func (i *Issuer) Key(kid string) crypto.Signer {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[kid]
}

// SetDown makes every endpoint answer 503 (or serve again).
func (i *Issuer) SetDown(down bool) { i.down.Store(down) }

// JWKSFetches counts requests for the key set.
func (i *Issuer) JWKSFetches() int { return int(i.jwks.Load()) }

// DiscoveryFetches counts requests for the discovery document.
func (i *Issuer) DiscoveryFetches() int { return int(i.disco.Load()) }

// Claims returns valid claims for alice, with overrides applied; an override of nil
// removes the claim.
func (i *Issuer) Claims(overrides map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss":            i.URL,
		"aud":            "kubernetes",
		"sub":            "alice-sub",
		"email":          "alice@example.com",
		"email_verified": true,
		"groups":         []any{"developers", "admins"},
		"iat":            now.Unix(),
		"exp":            now.Add(10 * time.Minute).Unix(),
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// Sign signs claims with key kid using alg. kid "" omits the kid header but signs with
// DefaultKeyID.
func (i *Issuer) Sign(t testing.TB, kid, alg string, claims map[string]any) string {
	t.Helper()
	key := i.Key(kid)
	if kid == "" {
		key = i.Key(DefaultKeyID)
	}
	if key == nil {
		t.Fatalf("no key %q", kid)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("marshal claims: %v", err)
	}
	return oidctest.SignIDToken(key, kid, alg, string(b))
}

// Token signs claims with the default key and RS256.
func (i *Issuer) Token(t testing.TB, overrides map[string]any) string {
	t.Helper()
	return i.Sign(t, DefaultKeyID, "RS256", i.Claims(overrides))
}

// Config returns a jwt[] entry for this issuer: audience kubernetes, username from email
// without prefix, groups from groups with prefix "oidc:", uid from sub.
func (i *Issuer) Config() config.JWTAuthenticator {
	empty, oidcPrefix := "", "oidc:"
	return config.JWTAuthenticator{
		Issuer: config.Issuer{URL: i.URL, Audiences: []string{"kubernetes"}, CertificateAuthority: i.CAPEM},
		ClaimMappings: config.ClaimMappings{
			Username: config.PrefixedClaimOrExpression{Claim: "email", Prefix: &empty},
			Groups:   config.PrefixedClaimOrExpression{Claim: "groups", Prefix: &oidcPrefix},
			UID:      config.ClaimOrExpression{Claim: "sub"},
		},
	}
}
