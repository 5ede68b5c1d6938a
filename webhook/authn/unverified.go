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

// Unverified is a token parsed but not yet checked: enough to pick the issuer, to check the
// signature, and to explain a denial precisely. Nothing in it may be
// trusted before the issuer has checked the signature, which covers all of it.
type Unverified struct {
	Raw       string
	Algorithm string
	KeyID     string
	Issuer    string
	Expiry    time.Time // zero when absent
	NotBefore time.Time // zero when absent
	// Payload is the decoded claim set, as JSON.
	Payload []byte
	// Signature is the decoded signature.
	Signature []byte
}

// SigningInput is what the signature covers: the header and payload parts, as sent.
func (u *Unverified) SigningInput() string {
	return u.Raw[:strings.LastIndexByte(u.Raw, '.')]
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// routingClaims are the claims read before the signature is checked: the issuer, to route the
// token, and its validity period, to explain a denial. The issuer checks the types of the
// other registered claims once the signature holds.
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

// ParseUnverified reads a compact JWS: its header, its routing claims and its signature,
// without checking anything cryptographic. It rejects anything that cannot be a signed JWT.
func ParseUnverified(raw string) (*Unverified, error) {
	h, p, sig, err := split(raw)
	if err != nil {
		return nil, err
	}
	hdr, err := decodeHeader(h)
	if err != nil {
		return nil, err
	}
	var c routingClaims
	payload, err := decodeSegment(p, &c)
	if err != nil {
		return nil, Deny(ReasonMalformed, "payload: %w", err)
	}
	if c.Iss == "" {
		return nil, errNoIssuer
	}
	u := &Unverified{Raw: raw, Algorithm: hdr.Alg, KeyID: hdr.Kid, Issuer: c.Iss, Payload: payload}
	if u.Expiry, err = numericDate(c.Exp); err != nil {
		return nil, Deny(ReasonMalformed, "exp: %w", err)
	}
	if u.NotBefore, err = numericDate(c.Nbf); err != nil {
		return nil, Deny(ReasonMalformed, "nbf: %w", err)
	}
	if u.Signature, err = base64.RawURLEncoding.DecodeString(sig); err != nil {
		return nil, Deny(ReasonMalformed, "signature: not base64url: %w", err)
	}
	return u, nil
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

// decodeHeader reads the alg and kid of a token's header part.
func decodeHeader(seg string) (header, error) {
	var hdr header
	if _, err := decodeSegment(seg, &hdr); err != nil {
		return header{}, Deny(ReasonMalformed, "header: %w", err)
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

// numericDate reads a NumericDate (RFC 7519 §2): seconds since the epoch, possibly with a
// fraction, which is dropped.
func numericDate(n *json.Number) (time.Time, error) {
	if n == nil {
		return time.Time{}, nil
	}
	if i, err := n.Int64(); err == nil {
		return time.Unix(i, 0), nil
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, fmt.Errorf("not a number: %w", err)
	}
	return time.Unix(int64(f), 0), nil
}
