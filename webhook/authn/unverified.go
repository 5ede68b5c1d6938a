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
// signature and the registered claims, and to explain a denial precisely. Nothing in it may be
// trusted before the issuer has checked the signature, which covers all of it.
type Unverified struct {
	Raw       string
	Algorithm string
	KeyID     string
	Issuer    string
	Subject   string
	Audience  []string
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

// registeredClaims are the claims every id_token carries (OpenID Connect Core §2), with the
// types go-oidc, and so kube-apiserver, insists on: a token whose registered claims have
// other types is malformed.
type registeredClaims struct {
	Iss          string                 `json:"iss"`
	Sub          string                 `json:"sub"`
	Aud          audience               `json:"aud"`
	Exp          *json.Number           `json:"exp"`
	Nbf          *json.Number           `json:"nbf"`
	Iat          *json.Number           `json:"iat"`
	Nonce        string                 `json:"nonce"`
	AtHash       string                 `json:"at_hash"`
	ClaimNames   map[string]string      `json:"_claim_names"`
	ClaimSources map[string]claimSource `json:"_claim_sources"`
}

type claimSource struct {
	Endpoint    string `json:"endpoint"`
	AccessToken string `json:"access_token"`
}

// audience is the aud claim: one string or a list of them.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("aud must be a string or a list of strings: %w", err)
	}
	*a = many
	return nil
}

// Denials of tokens that are not JWTs at all, made once: garbage is the cheapest thing to
// refuse and must stay so.
var (
	errNotJWT    = Deny(ReasonMalformed, "not a JWT: want three dot-separated parts")
	errEmptyPart = Deny(ReasonMalformed, "not a signed JWT: a part is empty")
	errNoIssuer  = Deny(ReasonMalformed, "the token has no iss claim")
)

// ParseUnverified reads a compact JWS: its header, its registered claims and its signature,
// without checking anything cryptographic. It rejects anything that cannot be a signed JWT.
func ParseUnverified(raw string) (*Unverified, error) {
	h, p, sig, err := split(raw)
	if err != nil {
		return nil, err
	}
	var hdr header
	if _, err := decodeSegment(h, &hdr); err != nil {
		return nil, Deny(ReasonMalformed, "header: %w", err)
	}
	var c registeredClaims
	payload, err := decodeSegment(p, &c)
	if err != nil {
		return nil, Deny(ReasonMalformed, "payload: %w", err)
	}
	if c.Iss == "" {
		return nil, errNoIssuer
	}
	u := &Unverified{Raw: raw, Algorithm: hdr.Alg, KeyID: hdr.Kid, Issuer: c.Iss, Subject: c.Sub,
		Audience: c.Aud, Payload: payload}
	if u.Expiry, err = numericDate(c.Exp); err != nil {
		return nil, Deny(ReasonMalformed, "exp: %w", err)
	}
	if u.NotBefore, err = numericDate(c.Nbf); err != nil {
		return nil, Deny(ReasonMalformed, "nbf: %w", err)
	}
	if _, err = numericDate(c.Iat); err != nil {
		return nil, Deny(ReasonMalformed, "iat: %w", err)
	}
	// Distributed claims are not resolved, but, as in go-oidc, a reference to a source the
	// token lacks makes it malformed.
	for name, src := range c.ClaimNames {
		if _, ok := c.ClaimSources[src]; !ok || src == "" {
			return nil, Deny(ReasonMalformed, "_claim_names: claim %q names source %q, which _claim_sources lacks", name, src)
		}
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
