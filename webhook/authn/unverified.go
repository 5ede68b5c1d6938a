package authn

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// MaxTokenBytes bounds the length of a token; longer ones are denied unread.
const MaxTokenBytes = 64 << 10

// Unverified is what a token claims about itself before its signature is checked: enough to
// pick the issuer and to explain a denial precisely. Nothing in it may be trusted.
type Unverified struct {
	Raw       string
	Algorithm string
	KeyID     string
	Issuer    string
	Expiry    time.Time // zero when absent
	NotBefore time.Time // zero when absent
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

type routingClaims struct {
	Iss string       `json:"iss"`
	Exp *json.Number `json:"exp"`
	Nbf *json.Number `json:"nbf"`
}

// Denials of tokens that are not JWTs at all, made once: garbage is the cheapest thing to
// refuse and must stay so.
var (
	errNotJWT    = Deny(ReasonMalformed, "not a JWT: want three dot-separated parts")
	errEmptyPart = Deny(ReasonMalformed, "not a signed JWT: a part is empty")
	errNoIssuer  = Deny(ReasonMalformed, "the token has no iss claim")
)

// ParseUnverified reads the header and the routing claims of a compact JWS, without
// checking anything cryptographic. It rejects anything that cannot be a signed JWT.
func ParseUnverified(raw string) (*Unverified, error) {
	if len(raw) > MaxTokenBytes {
		return nil, Deny(ReasonMalformed, "token is %d bytes, more than the %d allowed", len(raw), MaxTokenBytes)
	}
	h, rest, ok := strings.Cut(raw, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(sig, ".") {
		return nil, errNotJWT
	}
	if h == "" || p == "" || sig == "" {
		return nil, errEmptyPart
	}
	var hdr header
	if err := decodeSegment(h, &hdr); err != nil {
		return nil, Deny(ReasonMalformed, "header: %w", err)
	}
	var c routingClaims
	if err := decodeSegment(p, &c); err != nil {
		return nil, Deny(ReasonMalformed, "payload: %w", err)
	}
	u := &Unverified{Raw: raw, Algorithm: hdr.Alg, KeyID: hdr.Kid, Issuer: c.Iss}
	var err error
	if u.Expiry, err = numericDate(c.Exp); err != nil {
		return nil, Deny(ReasonMalformed, "exp: %w", err)
	}
	if u.NotBefore, err = numericDate(c.Nbf); err != nil {
		return nil, Deny(ReasonMalformed, "nbf: %w", err)
	}
	if u.Issuer == "" {
		return nil, errNoIssuer
	}
	return u, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return fmt.Errorf("not base64url: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	return nil
}

func numericDate(n *json.Number) (time.Time, error) {
	if n == nil {
		return time.Time{}, nil
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, fmt.Errorf("not a number: %w", err)
	}
	return time.Unix(int64(f), 0), nil
}
