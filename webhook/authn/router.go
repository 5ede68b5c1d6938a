package authn

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// TokenVerifier turns a raw token into the identity it carries, or a *Denial. The router
// implements it over the issuers, and the cache wraps a TokenVerifier, as kube-apiserver's
// token cache wraps its authenticators.
type TokenVerifier interface {
	VerifyToken(ctx context.Context, raw string) (*Identity, error)
}

// router sends each token to the issuer its unverified iss names.
type router struct {
	issuers map[string]Verifier
	names   []string      // the issuers' URLs, sorted
	waiters []KeyAwaiter  // every issuer, when each is a KeyAwaiter
	slots   chan struct{} // one per verification in flight, when MaxInFlight bounds them
}

// errOverloaded is the answer beyond MaxInFlight verifications.
var errOverloaded = Undecided(ReasonOverloaded, errors.New("too many tokens are being verified at once; retry shortly"))

func newRouter(issuers map[string]Verifier, maxInFlight int) *router {
	r := &router{issuers: issuers, names: slices.Sorted(maps.Keys(issuers))}
	for _, name := range r.names {
		w, ok := issuers[name].(KeyAwaiter)
		if !ok {
			r.waiters = nil
			break
		}
		r.waiters = append(r.waiters, w)
	}
	if maxInFlight > 0 {
		r.slots = make(chan struct{}, maxInFlight)
	}
	return r
}

// VerifyToken routes raw to the issuer its unverified iss names, within the bound on
// verifications in flight (TokenVerifier).
func (r *router) VerifyToken(ctx context.Context, raw string) (*Identity, error) {
	tok, err := ParseUnverified(raw)
	if err != nil {
		return nil, Record(ctx, "parse", "", err)
	}
	if Traced(ctx) {
		Record(ctx, "parse", fmt.Sprintf("alg %s, kid %q, iss %q", tok.Algorithm, tok.KeyID, tok.Issuer), nil)
	}
	v, ok := r.issuers[tok.Issuer]
	if !ok {
		return nil, Record(ctx, "issuer", "", Deny(ReasonUnknownIssuer, "issuer %q is not configured", tok.Issuer))
	}
	if Traced(ctx) {
		Record(ctx, "issuer", tok.Issuer+" is configured", nil)
	}
	if r.slots != nil {
		select {
		case r.slots <- struct{}{}:
			defer func() { <-r.slots }()
		default:
			return nil, Record(ctx, "capacity", "", errOverloaded)
		}
	}
	id, err := v.Verify(ctx, tok)
	if err != nil {
		return nil, AsDenial(err)
	}
	return id, nil
}

// awaitedKey answers, from the token's header part alone, a token whose key no issuer knows
// while every issuer waits out its key fetch interval with a fetch already scheduled. Whatever
// issuer the token names, it cannot be verified before that fetch: such a token is undecided,
// as the issuer would answer it, and neither its claims nor the cache are read. This is what
// a flood of forged key IDs meets after its first token. It differs from the full path in two
// answers, both refusals: a token from an issuer that is not configured is unknown_key here,
// not unknown_issuer; and a token verified earlier with a key its issuer has since dropped is
// not taken from the cache in that window.
//
// Outside such windows it costs an atomic load per issuer.
func (r *router) awaitedKey(ctx context.Context, header string) error {
	if len(r.waiters) == 0 {
		return nil
	}
	for _, w := range r.waiters {
		if !w.FetchScheduled() {
			return nil
		}
	}
	hdr, err := decodeHeader(header)
	kid := hdr.str("kid")
	if err != nil || kid == "" {
		return nil // the full parse says what is wrong
	}
	for _, w := range r.waiters {
		if !w.AwaitsKey(hdr.str("alg"), kid) {
			return nil
		}
	}
	return Record(ctx, "key", "", Undecided(ReasonUnknownKey, keyAwaited{kid: kid}))
}

// keyAwaited says why a token was undecided from its header. A flood of forged key IDs meets
// it at every token, so it is formatted only when the line is logged.
type keyAwaited struct{ kid string }

func (e keyAwaited) Error() string {
	return fmt.Sprintf("no issuer publishes key %q yet; each has a key fetch scheduled within its refresh interval", e.kid)
}
