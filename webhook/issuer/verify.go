package issuer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// This file is what accepts a token: go-oidc's ID token verifier, configured as kube-apiserver
// configures it, over the issuer's key set (whose signature check is go-jose's). Everything
// before it only refuses early; nothing after it runs unless it returned the token.

// verifier is go-oidc's verifier of one discovered issuer, with the key set behind it.
type verifier struct {
	keys *keySet
	oidc *oidc.IDTokenVerifier
	// audiences is set when several are configured: go-oidc then skips its audience check
	// and the token must carry one of them (audienceMatchPolicy MatchAny), as in kube-apiserver.
	audiences []string
}

func (i *Issuer) newVerifier(keys *keySet) *verifier {
	aud := i.cfg.Issuer.Audiences
	c := &oidc.Config{SupportedSigningAlgs: SigningAlgorithms, Now: i.opts.Clock.Now}
	v := &verifier{keys: keys}
	if len(aud) == 1 {
		c.ClientID = aud[0]
	} else {
		c.SkipClientIDCheck = true
		v.audiences = aud
	}
	v.oidc = oidc.NewVerifier(i.URL(), keys, c)
	return v
}

// verify returns the token go-oidc accepted, or a *authn.Denial saying why it did not.
func (v *verifier) verify(ctx context.Context, raw string) (*oidc.IDToken, error) {
	ctx, kv := withVerdict(ctx)
	t, err := v.oidc.Verify(ctx, raw)
	if err != nil {
		return nil, explain(err, kv)
	}
	if v.audiences != nil && !slices.ContainsFunc(t.Audience, func(a string) bool { return slices.Contains(v.audiences, a) }) {
		return nil, authn.Deny(authn.ReasonAudience, "token audience %q does not include any of %q", t.Audience, v.audiences)
	}
	return t, nil
}

// NotBeforeLeeway is the clock skew go-oidc (and so kube-apiserver) tolerates on nbf; exp
// gets none, and iat is not compared with the clock.
const NotBeforeLeeway = 5 * time.Minute

// explain turns go-oidc's refusal into a denial with a reason: the key set's own verdict when
// it refused, else the kind of check that failed. The verdict is go-oidc's either way.
func explain(err error, kv *verdict) *authn.Denial {
	if kv.denial != nil {
		return kv.denial
	}
	var expired *oidc.TokenExpiredError
	if errors.As(err, &expired) {
		if expired.Expiry.IsZero() || expired.Expiry.Unix() == 0 {
			return authn.Deny(authn.ReasonExpired, "token has no exp claim")
		}
		return authn.Deny(authn.ReasonExpired, "token expired at %s", expired.Expiry.UTC().Format(time.RFC3339))
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "malformed jwt"), strings.Contains(msg, "not signed"), strings.Contains(msg, "multiple signatures"):
		return authn.Deny(authn.ReasonMalformed, "%w", err)
	case strings.Contains(msg, "expected audience"):
		return authn.Deny(authn.ReasonAudience, "%w", err)
	case strings.Contains(msg, "nbf"):
		return authn.Deny(authn.ReasonNotYetValid, "%w (leeway %s)", err, NotBeforeLeeway)
	case strings.Contains(msg, "different provider"):
		return authn.Deny(authn.ReasonUnknownIssuer, "%w", err)
	default:
		return authn.Deny(authn.ReasonInvalidClaims, "%w", err)
	}
}

// FetchScheduled reports whether a key fetch is scheduled (authn.KeyAwaiter).
func (i *Issuer) FetchScheduled() bool {
	v := i.ready.Load()
	return v != nil && v.keys.deferred.Load()
}

// AwaitsKey reports whether a token signed with alg by the key kid would be undecided by
// Verify, as the key it names can only arrive with the key fetch already scheduled: the
// same checks, in the same order, as far as the key (authn.KeyAwaiter).
func (i *Issuer) AwaitsKey(alg, kid string) bool {
	v := i.ready.Load()
	return v != nil && slices.Contains(SigningAlgorithms, alg) && v.keys.awaits(kid)
}

// Verify checks a token whose unverified iss names this issuer and returns its identity, or
// an *authn.Denial saying why not: accept, then distributed claims, then the claim mappings.
func (i *Issuer) Verify(ctx context.Context, tok *authn.Unverified) (*authn.Identity, error) {
	t, v, err := i.accept(ctx, tok)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := t.Claims(&claims); err != nil {
		return nil, authn.Deny(authn.ReasonInvalidClaims, "decode claims: %w", err)
	}
	if err := i.resolveDistributed(ctx, v, claims); err != nil {
		return nil, authn.Record(ctx, "distributed claims", "", err)
	}
	id, err := i.identity(ctx, claims)
	if err != nil {
		return nil, err
	}
	id.Expiry = t.Expiry
	return id, nil
}

// accept returns the token when go-oidc's verifier accepted it (and, with several audiences,
// it names one of them). The algorithm and key checks before it refuse early what go-oidc
// would refuse, so that a flood of forged tokens is cheap; they never accept anything.
func (i *Issuer) accept(ctx context.Context, tok *authn.Unverified) (*oidc.IDToken, *verifier, error) {
	if !slices.Contains(SigningAlgorithms, tok.Algorithm) {
		return nil, nil, authn.Record(ctx, "algorithm", "", authn.Deny(authn.ReasonAlgorithm,
			"alg %q is not accepted; want one of %v", tok.Algorithm, SigningAlgorithms))
	}
	v := i.ready.Load()
	if v == nil {
		return nil, nil, authn.Record(ctx, "issuer ready", "", authn.Undecided(authn.ReasonIssuerNotReady,
			fmt.Errorf("issuer %s is not ready: %s", i.URL(), i.Status().Message)))
	}
	// A key ID the issuer does not publish is settled before go-oidc parses the token: a
	// flood of forged key IDs costs a lookup, and the issuer one fetch per interval.
	if err := v.keys.ensure(ctx, tok.KeyID); err != nil {
		return nil, nil, authn.Record(ctx, "key", describeKid(tok.KeyID), err)
	}
	t, err := v.verify(ctx, tok.Raw)
	if err != nil {
		return nil, nil, authn.Record(ctx, "go-oidc", "", err)
	}
	authn.Record(ctx, "go-oidc", "signature, iss, aud, exp and nbf hold", nil)
	return t, v, nil
}
