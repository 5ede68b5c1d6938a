// Package authn decides who a bearer token belongs to. It routes a token to the issuer named
// by its unverified iss claim, remembers verified tokens, applies the identity mapping and
// explains every denial with a reason an operator can act on.
package authn

import "time"

// Identity is what a verified token says about its holder, before any mapping.
type Identity struct {
	// Issuer is the configured issuer URL that verified the token.
	Issuer string
	// Subject is the token's sub claim.
	Subject string
	// Email is the token's email claim, "" when absent.
	Email string
	// EmailVerified is the token's email_verified claim, nil when absent.
	EmailVerified *bool
	// Groups are the raw values of the configured groups claim, before any prefix.
	Groups []string
	// Claims holds every top-level claim of the token.
	Claims map[string]any
	// Expiry is the token's exp.
	Expiry time.Time
	// User is the user the issuer's claimMappings give.
	User User
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
