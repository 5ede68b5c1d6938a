// Package authn decides who a bearer token belongs to. It routes a token to the issuer named
// by its unverified iss claim, remembers verified tokens, applies the identity mapping and
// explains every denial with a reason an operator can act on.
package authn

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Identity is what a verified token says about its holder, before any mapping.
//
// Nothing may modify an Identity once it is built. The cache keeps its fields below, packed
// (packed.go), but not its claim set: Claims decodes that again, from the request's own
// token, when the identity mapping asks for it.
type Identity struct {
	// Issuer is the configured issuer URL that verified the token.
	Issuer string
	// Subject is the token's sub claim.
	Subject string
	// Email is the token's email claim, "" when absent.
	Email string
	// EmailVerified is the token's email_verified claim, nil when absent; set it with
	// Verified(b), which allocates nothing.
	EmailVerified *bool
	// Groups are the raw values of the configured groups claim, before any prefix.
	Groups []string
	// Expiry is the token's exp.
	Expiry time.Time
	// User is the user the issuer's claimMappings give.
	User User

	// claims is the decoded claim set, when at hand; payload is the token's payload segment,
	// to decode it from when not.
	claims  map[string]any
	payload string
}

var verifiedTrue, verifiedFalse = true, false

// Verified returns a shared pointer to b, for EmailVerified.
func Verified(b bool) *bool {
	if b {
		return &verifiedTrue
	}
	return &verifiedFalse
}

// SetClaims gives the identity the token's decoded claim set. The issuer calls it as it
// builds the identity; the map must not be modified afterwards.
func (id *Identity) SetClaims(claims map[string]any) { id.claims = claims }

// Claims returns every top-level claim of the token (nested values included), decoding them
// from the token when the identity came from the cache. The map must not be modified. Only an
// identity unpacked for one request decodes, and so writes to itself.
func (id *Identity) Claims() (map[string]any, error) {
	if id.claims != nil || id.payload == "" {
		return id.claims, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(id.payload)
	if err != nil {
		return nil, fmt.Errorf("decode the claims of a cached token: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		return nil, fmt.Errorf("decode the claims of a cached token: %w", err)
	}
	id.claims = claims
	return claims, nil
}

// withPayload lets an identity unpacked from the cache decode its claims from raw, the
// request's token: the same token the cached identity was verified from.
func (id *Identity) withPayload(raw string) *Identity {
	if _, rest, ok := strings.Cut(raw, "."); ok {
		id.payload, _, _ = strings.Cut(rest, ".")
	}
	return id
}

// User is a Kubernetes user, as a TokenReview reports it.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// EmailUsable reports whether the token's email may identify its holder: present, and not
// marked unverified.
func (id *Identity) EmailUsable() bool {
	return id.Email != "" && (id.EmailVerified == nil || *id.EmailVerified)
}
