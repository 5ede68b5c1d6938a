package authn

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// MaxTokenBytes bounds the length of a token; longer ones are denied unread.
const MaxTokenBytes = 64 << 10

// Unverified is what is read of a token before anything is checked: enough to route it to
// its issuer and to refuse early what cannot verify. Nothing in it may be trusted, and
// nothing read here can make a token accepted: the issuer's go-oidc verifier parses and
// checks the token itself.
type Unverified struct {
	Raw       string
	Algorithm string
	KeyID     string
	// Issuer is the unverified iss, with Google's legacy form read as its URL, as
	// kube-apiserver routes it.
	Issuer string
}

// The JOSE header's members, read by their exact names (RFC 7515 §4: member names are
// case-sensitive), as go-jose reads them.
type header map[string]any

func (h header) str(name string) string {
	s, _ := h[name].(string)
	return s
}

// routingClaims is the claim read before the signature is checked: the issuer, to route the
// token, decoded as go-oidc and kube-apiserver decode it.
type routingClaims struct {
	Iss string `json:"iss"`
}

// googleIssuer is the one issuer whose tokens may carry iss without its scheme; go-oidc
// accepts the legacy form for it, and kube-apiserver routes it there.
const (
	googleIssuer         = "https://accounts.google.com"
	googleIssuerNoScheme = "accounts.google.com"
)

// Denials of tokens that are not JWTs at all, made once: garbage is the cheapest thing to
// refuse and must stay so.
var (
	errNotJWT    = Deny(ReasonMalformed, "not a JWT: want three dot-separated parts")
	errEmptyPart = Deny(ReasonMalformed, "not a signed JWT: a part is empty")
	errNoIssuer  = Deny(ReasonMalformed, "the token has no iss claim")
)

// ParseUnverified reads a compact JWS's header and its iss, without checking anything. It
// refuses what go-oidc would refuse as well: anything that cannot be a signed JWT.
func ParseUnverified(raw string) (*Unverified, error) {
	h, p, _, err := split(raw)
	if err != nil {
		return nil, err
	}
	hdr, err := decodeHeader(h)
	if err != nil {
		return nil, err
	}
	var c routingClaims
	if _, err := decodeSegment(p, &c); err != nil {
		return nil, Deny(ReasonMalformed, "payload: %w", err)
	}
	if c.Iss == "" {
		return nil, errNoIssuer
	}
	if c.Iss == googleIssuerNoScheme {
		c.Iss = googleIssuer
	}
	return &Unverified{Raw: raw, Algorithm: hdr.str("alg"), KeyID: hdr.str("kid"), Issuer: c.Iss}, nil
}

// split cuts a compact JWS into its three parts, or says why raw cannot be one. It costs next
// to nothing, so that garbage is refused before anything else is spent on it.
func split(raw string) (header, payload, signature string, err error) {
	if len(raw) > MaxTokenBytes {
		return "", "", "", Deny(ReasonMalformed, "token is %d bytes, more than the %d allowed", len(raw), MaxTokenBytes)
	}
	h, rest, ok := strings.Cut(raw, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(sig, ".") {
		return "", "", "", errNotJWT
	}
	if h == "" || p == "" || sig == "" {
		return "", "", "", errEmptyPart
	}
	return h, p, sig, nil
}

// decodeHeader reads a token's header part.
func decodeHeader(seg string) (header, error) {
	var hdr header
	if _, err := decodeSegment(seg, &hdr); err != nil {
		return nil, Deny(ReasonMalformed, "header: %w", err)
	}
	return hdr, nil
}

// decodeSegment decodes a base64url part of the token and the JSON object in it.
func decodeSegment(seg string, v any) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return nil, fmt.Errorf("not base64url: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("not a JSON object of the expected shape: %w", err)
	}
	return b, nil
}
