package login

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/oidc-authenticator/oidc-authenticator/login/provider"
	"github.com/oidc-authenticator/oidc-authenticator/login/tokencache"
)

// Refresh rule: a cached id_token is handed out while more than minLeft and more than
// 1/minLeftDivisor of its lifetime are left; after that it is refreshed.
const (
	minLeft        = time.Minute
	minLeftDivisor = 10
)

// signingAlgs are the algorithms accepted when reading a cached id_token.
var signingAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

// cachedToken is a cache entry with the times of its id_token.
type cachedToken struct {
	raw, refreshToken string
	issuedAt, expiry  time.Time
}

func (c cachedToken) token() Token { return Token{IDToken: c.raw, Expiry: c.expiry} }

// cached reads the entry of key. When the id_token cannot be read, the error says why and the
// refresh token, if any, is still returned.
func cached(ctx context.Context, cfg provider.Config, cache tokencache.Dir, key tokencache.Key) (cachedToken, error) {
	e, err := cache.Load(key)
	if err != nil {
		return cachedToken{}, err
	}
	c := cachedToken{refreshToken: e.RefreshToken}
	// The id_token was verified with the issuer's keys before it was cached, in a file only its
	// owner can read; its iss, aud and times are read here without the keys, so that handing out
	// a fresh token takes no network request at all.
	v := oidc.NewVerifier(cfg.IssuerURL, nil, &oidc.Config{
		ClientID:                   cfg.ClientID,
		SupportedSigningAlgs:       signingAlgs,
		SkipExpiryCheck:            true,
		InsecureSkipSignatureCheck: true,
	})
	t, err := v.Verify(ctx, e.IDToken)
	if err != nil {
		return c, fmt.Errorf("the cached id_token is unusable: %w", err)
	}
	c.raw, c.issuedAt, c.expiry = e.IDToken, t.IssuedAt, t.Expiry
	return c, nil
}

// fresh reports whether the cached id_token can be handed out at now without a refresh.
func fresh(c cachedToken, now time.Time) bool {
	left := c.expiry.Sub(now)
	if c.raw == "" || left < minLeft {
		return false
	}
	lifetime := c.expiry.Sub(c.issuedAt)
	return c.issuedAt.IsZero() || lifetime <= 0 || left >= lifetime/minLeftDivisor
}
