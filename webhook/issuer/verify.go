package issuer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// NotBeforeLeeway is the clock skew go-oidc tolerates on nbf; exp gets none, as in
// kube-apiserver.
const NotBeforeLeeway = 5 * time.Minute

// Verify checks a token whose unverified iss is this issuer and returns its identity, or an
// *authn.Denial saying why not.
func (i *Issuer) Verify(ctx context.Context, tok *authn.Unverified) (*authn.Identity, error) {
	if !slices.Contains(SigningAlgorithms, jose.SignatureAlgorithm(tok.Algorithm)) {
		return nil, authn.Record(ctx, "algorithm", "", authn.Deny(authn.ReasonAlgorithm,
			"alg %q is not accepted; want one of %v", tok.Algorithm, SigningAlgorithms))
	}
	authn.Record(ctx, "algorithm", tok.Algorithm, nil)
	v := i.ready.Load()
	if v == nil {
		return nil, authn.Record(ctx, "issuer ready", "", authn.Undecided(authn.ReasonIssuerNotReady,
			fmt.Errorf("issuer %s is not ready: %s", i.URL(), i.Status().Message)))
	}
	// A key ID the issuer does not publish is settled before go-oidc parses the token: a
	// flood of forged key IDs costs what garbage costs, and the key set a rate-limited fetch.
	if d := v.keys.ensure(ctx, tok.KeyID); d != nil {
		return nil, authn.Record(ctx, "signature", "key "+quoteOrAny(tok.KeyID), d)
	}
	state := &verifyState{}
	idt, err := v.oidc.Verify(context.WithValue(ctx, verifyStateKey{}, state), tok.Raw)
	if err != nil {
		return nil, i.classify(ctx, tok, state, err)
	}
	if authn.Traced(ctx) {
		authn.Record(ctx, "signature", "key "+quoteOrAny(tok.KeyID), nil)
		authn.Record(ctx, "expiry", "expires "+idt.Expiry.UTC().Format(time.RFC3339), nil)
	}
	if !i.audienceMatches(idt.Audience) {
		return nil, authn.Record(ctx, "audience", "", authn.Deny(authn.ReasonAudience,
			"token audience %q does not include any of %q", idt.Audience, i.cfg.Issuer.Audiences))
	}
	if authn.Traced(ctx) {
		authn.Record(ctx, "audience", fmt.Sprintf("%q", idt.Audience), nil)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, authn.Deny(authn.ReasonInvalidClaims, "decode claims: %w", err)
	}
	id, err := i.identity(ctx, claims)
	if err != nil {
		return nil, err
	}
	id.Expiry = idt.Expiry
	return id, nil
}

// classify turns go-oidc's error into a precise denial.
func (i *Issuer) classify(ctx context.Context, tok *authn.Unverified, state *verifyState, err error) error {
	var expired *oidc.TokenExpiredError
	switch {
	case state.denial != nil:
		return authn.Record(ctx, "signature", "key "+quoteOrAny(tok.KeyID), state.denial)
	case errors.As(err, &expired):
		authn.Record(ctx, "signature", "key "+quoteOrAny(tok.KeyID), nil)
		return authn.Record(ctx, "expiry", "", authn.Deny(authn.ReasonExpired,
			"token expired at %s", expired.Expiry.UTC().Format(time.RFC3339)))
	case !tok.NotBefore.IsZero() && i.opts.Now().Add(NotBeforeLeeway).Before(tok.NotBefore):
		authn.Record(ctx, "signature", "key "+quoteOrAny(tok.KeyID), nil)
		return authn.Record(ctx, "not before", "", authn.Deny(authn.ReasonNotYetValid,
			"token is not valid before %s (leeway %s)", tok.NotBefore.UTC().Format(time.RFC3339), NotBeforeLeeway))
	default:
		return authn.Record(ctx, "token", "", authn.Deny(authn.ReasonInvalidClaims, "%w", err))
	}
}

func (i *Issuer) audienceMatches(aud []string) bool {
	for _, a := range i.cfg.Issuer.Audiences {
		if slices.Contains(aud, a) {
			return true
		}
	}
	return false
}

func quoteOrAny(kid string) string {
	if kid == "" {
		return "(no kid: every key tried)"
	}
	return fmt.Sprintf("%q", kid)
}
