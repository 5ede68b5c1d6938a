package issuer

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// NotBeforeLeeway is the clock skew tolerated on nbf, as go-oidc (and so kube-apiserver)
// tolerates it; exp gets none, and iat is not compared with the clock.
const NotBeforeLeeway = 5 * time.Minute

// FetchScheduled reports whether a key fetch is scheduled (authn.KeyAwaiter).
func (i *Issuer) FetchScheduled() bool {
	keys := i.ready.Load()
	return keys != nil && keys.deferred.Load()
}

// AwaitsKey reports whether a token signed with alg by the key kid would be undecided by
// Verify, as the key it names can only arrive with the key fetch already scheduled: the
// same checks, in the same order, as far as the key (authn.KeyAwaiter).
func (i *Issuer) AwaitsKey(alg, kid string) bool {
	keys := i.ready.Load()
	return keys != nil && slices.Contains(SigningAlgorithms, alg) && keys.awaits(kid)
}

// Verify checks a token whose unverified iss is this issuer and returns its identity, or an
// *authn.Denial saying why not. The checks are those of go-oidc's ID token verifier, which
// kube-apiserver uses, made on the token as authn.ParseUnverified parsed it once: the
// algorithm, the signature, iss, exp and nbf, then the audience and the claim rules.
func (i *Issuer) Verify(ctx context.Context, tok *authn.Unverified) (*authn.Identity, error) {
	if !slices.Contains(SigningAlgorithms, tok.Algorithm) {
		return nil, authn.Record(ctx, "algorithm", "", authn.Deny(authn.ReasonAlgorithm,
			"alg %q is not accepted; want one of %v", tok.Algorithm, SigningAlgorithms))
	}
	authn.Record(ctx, "algorithm", tok.Algorithm, nil)
	keys := i.ready.Load()
	if keys == nil {
		return nil, authn.Record(ctx, "issuer ready", "", authn.Undecided(authn.ReasonIssuerNotReady,
			fmt.Errorf("issuer %s is not ready: %s", i.URL(), i.Status().Message)))
	}
	// A key ID the issuer does not publish is settled before any signature is checked: a
	// flood of forged key IDs costs a parse and a lookup, and the issuer one fetch per interval.
	err := keys.ensure(ctx, tok.KeyID)
	if err == nil {
		err = keys.verify(ctx, tok)
	}
	if authn.Traced(ctx) {
		authn.Record(ctx, "signature", "key "+quoteOrAny(tok.KeyID), err)
	}
	if err != nil {
		return nil, err
	}
	if err := i.checkTime(ctx, tok); err != nil {
		return nil, err
	}
	if tok.Issuer != i.URL() {
		// Tokens are routed to the issuer their iss names, so this never happens; it is
		// checked all the same.
		return nil, authn.Deny(authn.ReasonUnknownIssuer, "issuer %q is not %q", tok.Issuer, i.URL())
	}
	claims, err := decodeClaims(tok.Payload)
	if err != nil {
		return nil, authn.Deny(authn.ReasonInvalidClaims, "decode claims: %w", err)
	}
	aud, err := registeredClaims(claims)
	if err != nil {
		return nil, authn.Record(ctx, "claims", "", authn.Deny(authn.ReasonInvalidClaims, "%w", err))
	}
	if !i.audienceMatches(aud) {
		return nil, authn.Record(ctx, "audience", "", authn.Deny(authn.ReasonAudience,
			"token audience %q does not include any of %q", aud, i.cfg.Issuer.Audiences))
	}
	if authn.Traced(ctx) {
		authn.Record(ctx, "audience", fmt.Sprintf("%q", aud), nil)
	}
	id, err := i.identity(ctx, claims)
	if err != nil {
		return nil, err
	}
	id.Expiry = tok.Expiry
	return id, nil
}

// checkTime applies exp (required, no leeway) and nbf (NotBeforeLeeway of skew allowed).
func (i *Issuer) checkTime(ctx context.Context, tok *authn.Unverified) error {
	now := i.opts.Now()
	switch {
	case tok.Expiry.IsZero():
		return authn.Record(ctx, "expiry", "", authn.Deny(authn.ReasonExpired, "token has no exp claim"))
	case tok.Expiry.Before(now):
		return authn.Record(ctx, "expiry", "", authn.Deny(authn.ReasonExpired,
			"token expired at %s", tok.Expiry.UTC().Format(time.RFC3339)))
	case !tok.NotBefore.IsZero() && now.Add(NotBeforeLeeway).Before(tok.NotBefore):
		return authn.Record(ctx, "not before", "", authn.Deny(authn.ReasonNotYetValid,
			"token is not valid before %s (leeway %s)", tok.NotBefore.UTC().Format(time.RFC3339), NotBeforeLeeway))
	}
	if authn.Traced(ctx) {
		authn.Record(ctx, "expiry", "expires "+tok.Expiry.UTC().Format(time.RFC3339), nil)
	}
	return nil
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
