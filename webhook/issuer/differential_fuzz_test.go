package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

// FuzzAcceptsWhatGoOIDCAccepts is the differential check of the verification path: for
// tokens built from valid ones with mutated headers and payloads (algs, kids, duplicate
// members, crit, whitespace, numeric forms of exp/nbf/iat, aud shapes, base64 variants,
// trailing data, extra segments), signed for real so that the mutation and not the signature
// decides, our verdict (pre-parse, routing, early refusals, go-oidc) must equal the verdict
// of go-oidc's own verifier with its own remote key set over the same JWKS and config, as
// kube-apiserver builds it. Every token we accept go-oidc must accept.
func FuzzAcceptsWhatGoOIDCAccepts(f *testing.F) {
	const (
		future = `4102444800` // 2100
		past   = `1000000000` // 2001
	)
	claims := func(extra string) string {
		return `{"iss":"ISSUER","aud":"kubernetes","sub":"alice","exp":` + future + extra + `}`
	}
	rs := `{"alg":"RS256","kid":"key-1"}`
	for _, seed := range []struct {
		header, payload string
		sig             uint8
		suffix          string
	}{
		{rs, claims(``), sigRS256, ""},
		{`{"alg":"ES256","kid":"ec-1"}`, claims(``), sigES256, ""},
		{`{"alg":"PS256","kid":"key-1"}`, claims(``), sigPS256, ""},
		{`{"alg":"RS256"}`, claims(``), sigRS256, ""},
		{`{"alg":"ES256","kid":"key-1"}`, claims(``), sigES256, ""},
		{`{"alg":"RS256","kid":"ec-1"}`, claims(``), sigRS256, ""},
		{`{"alg":"none","kid":"key-1"}`, claims(``), sigEmpty, ""},
		{`{"alg":"HS256","kid":"key-1"}`, claims(``), sigRS256, ""},
		{`{"ALG":"RS256","kid":"key-1"}`, claims(``), sigRS256, ""},
		{`{"alg":"none","alg":"RS256","kid":"key-1"}`, claims(``), sigRS256, ""},
		{`{"alg":"RS256","kid":"key-1","crit":["exp"]}`, claims(``), sigRS256, ""},
		{`{"alg":"RS256","kid":"key-1","crit":["b64"],"b64":false}`, claims(``), sigRS256, ""},
		{`{"alg":"RS256","kid":"key-1","jwk":{"kty":"RSA","n":"!!","e":"AQAB"}}`, claims(``), sigRS256, ""},
		{" {\"alg\" : \"RS256\",\n\"kid\":\"key-1\"} ", claims(``), sigRS256, ""},
		{rs, `{"iss":"ISSUER","aud":"kubernetes","sub":"alice","exp":` + past + `}`, sigRS256, ""},
		{rs, `{"iss":"ISSUER","aud":"kubernetes","sub":"alice"}`, sigRS256, ""},
		{rs, `{"iss":"ISSUER","aud":"kubernetes","sub":"alice","exp":"` + future + `"}`, sigRS256, ""},
		{rs, `{"iss":"ISSUER","aud":"kubernetes","sub":"alice","exp":4.1024448e9}`, sigRS256, ""},
		{rs, `{"iss":"ISSUER","aud":"kubernetes","sub":"alice","exp":` + future + `.5}`, sigRS256, ""},
		{rs, claims(`,"nbf":` + future), sigRS256, ""},
		{rs, claims(`,"iat":"yesterday"`), sigRS256, ""},
		{rs, claims(`,"iat":1e3`), sigRS256, ""},
		{rs, `{"iss":"ISSUER","aud":["x","kubernetes"],"sub":"alice","exp":` + future + `}`, sigRS256, ""},
		{rs, `{"iss":"ISSUER","aud":["x"],"sub":"alice","exp":` + future + `}`, sigRS256, ""},
		{rs, `{"iss":"ISSUER","aud":5,"sub":"alice","exp":` + future + `}`, sigRS256, ""},
		{rs, `{"iss":"ISSUER","iss":"https://evil","aud":"kubernetes","exp":` + future + `}`, sigRS256, ""},
		{rs, `{"ISS":"ISSUER","aud":"kubernetes","exp":` + future + `}`, sigRS256, ""},
		{rs, claims(`,"_claim_names":{"groups":"src1"}`), sigRS256, ""},
		{rs, claims(`,"sub":5`), sigRS256, ""},
		{rs, `[]`, sigRS256, ""},
		{rs, claims(``), sigRS256, "."},
		{rs, claims(``), sigRS256, ".eA"},
		{rs, claims(``), sigRS256, "="},
		{rs, claims(``), sigRS256, "\n"},
		{rs, claims(``), sigGarbage, ""},
		{rs, claims(``), sigRS256 | stdBase64, ""},
		{rs, claims(``), sigRS256 | padBase64, ""},
	} {
		f.Add(seed.header, seed.payload, seed.sig, seed.suffix)
	}

	d := newDifferential(f)
	f.Fuzz(func(t *testing.T, header, payload string, sig uint8, suffix string) {
		raw, ours, ref := d.judge(t, header, payload, sig, suffix)
		if (ours == nil) != (ref == nil) {
			t.Fatalf("verdicts differ on %q\n  header %q payload %q\n  ours: %v\n  go-oidc: %v", raw, header, payload, ours, ref)
		}
	})
}

// The differential check can fail: a valid token is accepted by both sides, and a token
// neither side accepts is refused by both.
func TestDifferentialBaseline(t *testing.T) {
	d := newDifferential(t)
	payload := `{"iss":"ISSUER","aud":"kubernetes","sub":"alice","exp":4102444800}`
	if _, ours, ref := d.judge(t, `{"alg":"RS256","kid":"key-1"}`, payload, sigRS256, ""); ours != nil || ref != nil {
		t.Fatalf("a valid token: ours %v, go-oidc %v; want both to accept", ours, ref)
	}
	if _, ours, ref := d.judge(t, `{"alg":"RS256","kid":"key-1"}`, payload, sigGarbage, ""); ours == nil || ref == nil {
		t.Fatalf("a bad signature: ours %v, go-oidc %v; want both to refuse", ours, ref)
	}
}

type differential struct {
	ti        *issuertest.Issuer
	is        *Issuer
	ctx       context.Context
	reference *oidc.IDTokenVerifier
	rsaKey    *rsa.PrivateKey
	ecKey     *ecdsa.PrivateKey
}

func newDifferential(tb testing.TB) *differential {
	ti := issuertest.New(tb)
	ti.AddKey(tb, "ec-1", "ES256")
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cfg := ti.Config()
	is, err := New(cfg, Options{Clock: testingclock.NewFakeClock(at), KeyRefreshInterval: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	go is.Run(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := is.WaitReady(wctx); err != nil {
		tb.Fatal(err)
	}
	// The reference: go-oidc's verifier with its own remote key set, as kube-apiserver has it.
	client := is.client
	rctx := oidc.ClientContext(ctx, client)
	reference := oidc.NewVerifier(ti.URL, oidc.NewRemoteKeySet(rctx, ti.URL+"/keys"), &oidc.Config{
		ClientID: "kubernetes", SupportedSigningAlgs: SigningAlgorithms, Now: func() time.Time { return at },
	})
	rsaKey := ti.Key(issuertest.DefaultKeyID).(*rsa.PrivateKey)
	ecKey := ti.Key("ec-1").(*ecdsa.PrivateKey)

	return &differential{ti: ti, is: is, ctx: rctx, reference: reference, rsaKey: rsaKey, ecKey: ecKey}
}

// judge builds the token and returns it with our verdict and go-oidc's.
func (d *differential) judge(t *testing.T, header, payload string, sig uint8, suffix string) (string, error, error) {
	payload = strings.ReplaceAll(payload, "ISSUER", d.ti.URL)
	raw := buildToken(t, header, payload, sig, suffix, d.rsaKey, d.ecKey)
	_, refErr := d.reference.Verify(d.ctx, raw)
	tok, err := authn.ParseUnverified(raw)
	if err == nil && tok.Issuer != d.is.URL() {
		err = authn.Deny(authn.ReasonUnknownIssuer, "routed elsewhere")
	}
	if err == nil {
		_, _, err = d.is.accept(d.ctx, tok)
	}
	return raw, err, refErr
}

// How the fuzz target signs: the low bits pick the signature, the flags the base64 form.
const (
	sigRS256   uint8 = 0
	sigES256   uint8 = 1
	sigPS256   uint8 = 2
	sigGarbage uint8 = 3
	sigEmpty   uint8 = 4
	stdBase64  uint8 = 1 << 6 // the standard alphabet instead of the URL-safe one
	padBase64  uint8 = 1 << 7 // with padding
)

func buildToken(t *testing.T, header, payload string, mode uint8, suffix string, rsaKey *rsa.PrivateKey, ecKey *ecdsa.PrivateKey) string {
	enc := base64.RawURLEncoding
	switch {
	case mode&stdBase64 != 0:
		enc = base64.RawStdEncoding
	case mode&padBase64 != 0:
		enc = base64.URLEncoding
	}
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	switch mode & 7 % 5 {
	case sigRS256:
		sig, err = rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, sum[:])
	case sigES256:
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, ecKey, sum[:])
		if err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	case sigPS256:
		sig, err = rsa.SignPSS(rand.Reader, rsaKey, crypto.SHA256, sum[:], nil)
	case sigGarbage:
		sig = []byte("not a signature")
	case sigEmpty:
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc.EncodeToString(sig) + suffix
}
