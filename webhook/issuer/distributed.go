package issuer

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	gocache "github.com/patrickmn/go-cache"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// Distributed claims (OpenID Connect Core §5.6.2): an issuer may leave a claim out of the
// token and name, in _claim_names, a source in _claim_sources whose endpoint serves a JWT
// holding it. Microsoft Entra ID does this with groups when a user is in too many. As
// kube-apiserver does, the groups claim (and here the username claim too) is resolved when
// the token lacks it and names a source for it; the source's JWT must be issued by the same
// issuer and pass the same verifier (signature, iss, aud, exp); and the token is denied when
// anything about the source is wrong.

const (
	// maxDistributedBytes bounds the body of a distributed claim source's answer.
	maxDistributedBytes = 256 << 10
	// maxDistributedEntries bounds the distributed claims remembered per issuer.
	maxDistributedEntries = 10_000
	// maxDistributedTTL bounds how long a resolved claim is remembered, whatever its exp.
	maxDistributedTTL = 10 * time.Minute
)

// distributedClaims returns the claims of the configured mappings that may be distributed.
func (i *Issuer) distributedClaims() []string {
	var names []string
	m := i.cfg.ClaimMappings
	if m.Username.Claim != "" {
		names = append(names, m.Username.Claim)
	}
	if m.Groups.Claim != "" {
		names = append(names, m.Groups.Claim)
	}
	return names
}

type claimSource struct {
	Endpoint    string `json:"endpoint"`
	AccessToken string `json:"access_token"`
}

// resolveDistributed fills in each mapped claim that the token distributes.
func (i *Issuer) resolveDistributed(ctx context.Context, v *verifier, claims map[string]any) error {
	rawNames, ok := claims["_claim_names"]
	if !ok {
		return nil
	}
	var absent []string
	for _, name := range i.distributedClaims() {
		if _, present := claims[name]; !present {
			absent = append(absent, name) // a claim in the token itself wins, as in kube-apiserver
		}
	}
	if len(absent) == 0 {
		return nil
	}
	names, ok := rawNames.(map[string]any)
	if !ok {
		return authn.Deny(authn.ReasonInvalidClaims, "distributed claims: _claim_names must be an object of strings, got a %T", rawNames)
	}
	for n, s := range names {
		if _, ok := s.(string); !ok {
			return authn.Deny(authn.ReasonInvalidClaims, "distributed claims: _claim_names[%q] must be a string, got a %T", n, s)
		}
	}
	rawSources, ok := claims["_claim_sources"]
	if !ok {
		return authn.Deny(authn.ReasonInvalidClaims, "distributed claims: the token has _claim_names but no _claim_sources")
	}
	sources, err := parseSources(rawSources)
	if err != nil {
		return authn.Deny(authn.ReasonInvalidClaims, "distributed claims: %w", err)
	}
	for _, name := range absent {
		src, ok := names[name].(string)
		if !ok {
			continue // this claim is not distributed
		}
		s, ok := sources[src]
		if !ok {
			return authn.Deny(authn.ReasonInvalidClaims, "distributed claims: _claim_names names source %q for claim %q, which _claim_sources lacks", src, name)
		}
		if s.Endpoint == "" {
			continue // an aggregated claim (a JWT in the token): not resolved, as in kube-apiserver
		}
		value, err := i.fetchDistributed(ctx, v, name, s)
		if err != nil {
			return err
		}
		claims[name] = value
		authn.Record(ctx, "distributed claim "+name, "from "+s.Endpoint, nil)
	}
	return nil
}

func parseSources(raw any) (map[string]claimSource, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("_claim_sources must be an object, got a %T", raw)
	}
	out := make(map[string]claimSource, len(m))
	for name, v := range m {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("_claim_sources[%q] must be an object, got a %T", name, v)
		}
		var s claimSource
		for field, dst := range map[string]*string{"endpoint": &s.Endpoint, "access_token": &s.AccessToken} {
			if f, present := obj[field]; present {
				str, ok := f.(string)
				if !ok {
					return nil, fmt.Errorf("_claim_sources[%q].%s must be a string, got a %T", name, field, f)
				}
				*dst = str
			}
		}
		out[name] = s
	}
	return out, nil
}

// distributedEntry is a resolved claim, remembered until its JWT expires.
type distributedEntry struct{ value any }

// fetchDistributed gets the claim's JWT from the source, has the issuer's verifier accept it,
// and returns the claim's value from it.
func (i *Issuer) fetchDistributed(ctx context.Context, v *verifier, name string, s claimSource) (any, error) {
	u, err := url.Parse(s.Endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, authn.Deny(authn.ReasonInvalidClaims, "distributed claim %q: endpoint %q is not an https URL; only https sources are followed", name, s.Endpoint)
	}
	key := distributedKey(name, s)
	if e, ok := i.distributed.Get(key); ok {
		return e.(distributedEntry).value, nil
	}
	jwt, err := i.getClaimJWT(ctx, s)
	if err != nil {
		// The source may be back soon: not cached by kube-apiserver.
		return nil, authn.Undecided(authn.ReasonInvalidClaims, fmt.Errorf("distributed claim %q: %w", name, err))
	}
	if tok, err := authn.ParseUnverified(jwt); err != nil || tok.Issuer != i.URL() {
		return nil, authn.Deny(authn.ReasonInvalidClaims, "distributed claim %q: the JWT from %s is not one issued by %s", name, s.Endpoint, i.URL())
	}
	t, err := v.verify(ctx, jwt)
	if err != nil {
		return nil, authn.Deny(authn.ReasonInvalidClaims, "distributed claim %q: the JWT from %s: %w", name, s.Endpoint, err)
	}
	var claims map[string]any
	if err := t.Claims(&claims); err != nil {
		return nil, authn.Deny(authn.ReasonInvalidClaims, "distributed claim %q: decode the JWT from %s: %w", name, s.Endpoint, err)
	}
	value, ok := claims[name]
	if !ok {
		return nil, authn.Deny(authn.ReasonInvalidClaims, "distributed claim %q: the JWT from %s does not hold it", name, s.Endpoint)
	}
	if ttl := min(t.Expiry.Sub(i.opts.Clock.Now()), maxDistributedTTL); ttl > 0 && i.distributed.ItemCount() < maxDistributedEntries {
		i.distributed.Set(key, distributedEntry{value: value}, ttl)
	}
	return value, nil
}

// distributedKey identifies a source's answer without keeping its access token.
func distributedKey(name string, s claimSource) string {
	sum := sha256.Sum256([]byte(name + "\x00" + s.Endpoint + "\x00" + s.AccessToken))
	return string(sum[:])
}

// getClaimJWT fetches the source's JWT, with the access token as bearer token when given.
func (i *Issuer) getClaimJWT(ctx context.Context, s claimSource) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint, nil)
	if err != nil {
		return "", fmt.Errorf("request to %s: %w", s.Endpoint, err)
	}
	if s.AccessToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.AccessToken)
	}
	client := *i.client
	client.CheckRedirect = httpsRedirectsOnly
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("request to %s: %w", s.Endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("%s answered HTTP %s", s.Endpoint, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDistributedBytes+1))
	if err != nil {
		return "", fmt.Errorf("read the answer of %s: %w", s.Endpoint, err)
	}
	if len(body) > maxDistributedBytes {
		return "", errors.New(s.Endpoint + " answered more than 256 KiB")
	}
	return string(body), nil
}

// httpsRedirectsOnly follows at most 10 redirects, each to an https URL.
func httpsRedirectsOnly(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "https" {
		return fmt.Errorf("redirected to %s, which is not an https URL; only https sources are followed", req.URL.Redacted())
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

func newDistributedCache() *gocache.Cache { return gocache.New(maxDistributedTTL, time.Minute) }
