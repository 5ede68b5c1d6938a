package issuer_test

import (
	"errors"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

// The security review's reproductions, each a test of the fix.

// An issuer that replaces the key behind a kid it already published: a token signed by the
// new key fails the signature with the known kid. That must set off the same rate-limited
// refetch as an unknown kid (undecided while it is pending, so kube-apiserver does not cache
// a denial), and the new key is accepted once fetched. Before, it was a clean bad_signature
// deny and no refetch ever happened: everyone was locked out until a restart.
func TestSameKidRotationIsPickedUp(t *testing.T) {
	ti := issuertest.New(t)
	c := testingclock.NewFakeClock(time.Now())
	is := start(t, ti.Config(), issuer.Options{KeyRefreshInterval: 10 * time.Second, Clock: c})

	ti.ReplaceKey(t, issuertest.DefaultKeyID, "RS256")
	rotated := ti.Token(t, nil)
	_, err := verify(t, is, rotated)
	var d *authn.Denial
	if !errors.As(err, &d) || !d.Retryable || d.Reason != authn.ReasonBadSignature {
		t.Fatalf("inside the refresh interval: want an undecided %q, got %v", authn.ReasonBadSignature, err)
	}
	c.Step(10 * time.Second)
	settle(t, is, c)
	if _, err := verify(t, is, rotated); err != nil {
		t.Fatalf("after the scheduled refetch the replaced key must verify: %v", err)
	}

	// Past the interval, a known-kid failure fetches at once: a replaced key is accepted on
	// its first token, and a signature no published key makes is then a clean denial.
	c.Step(10 * time.Second)
	ti.ReplaceKey(t, issuertest.DefaultKeyID, "RS256")
	if _, err := verify(t, is, ti.Token(t, nil)); err != nil {
		t.Fatalf("past the interval the replaced key must verify at once: %v", err)
	}
	c.Step(10 * time.Second)
	_, err = verify(t, is, rotated) // signed by a key the issuer no longer publishes
	if !errors.As(err, &d) || d.Retryable || d.Reason != authn.ReasonBadSignature {
		t.Fatalf("after a fresh fetch: want a clean %q denial, got %v", authn.ReasonBadSignature, err)
	}
}

// JWS headers are read as RFC 7515 says, by go-jose under go-oidc: crit with anything this
// verifier does not implement, member names in another case, duplicate members and an
// invalid embedded jwk are refused, as kube-apiserver refuses them. Each token below is
// validly signed by a published key.
func TestJOSEHeaderRules(t *testing.T) {
	ti := issuertest.New(t)
	is := start(t, ti.Config(), issuer.Options{KeyRefreshInterval: time.Hour})
	kid := issuertest.DefaultKeyID
	for _, tc := range []struct {
		name, header string
		accepted     bool
	}{
		{"the plain header", `{"alg":"RS256","kid":"key-1"}`, true},
		{"crit naming a registered claim", `{"alg":"RS256","kid":"key-1","crit":["exp"],"exp":1}`, false},
		{"crit b64 with b64 false (an unencoded payload)", `{"alg":"RS256","kid":"key-1","crit":["b64"],"b64":false}`, false},
		{"member names are case-sensitive", `{"ALG":"RS256","kid":"key-1"}`, false},
		{"duplicate alg, none first", `{"alg":"none","alg":"RS256","kid":"key-1"}`, false},
		{"duplicate alg, RS256 first", `{"alg":"RS256","alg":"none","kid":"key-1"}`, false},
		{"an invalid embedded jwk", `{"alg":"RS256","kid":"key-1","jwk":{"kty":"RSA","n":"!!","e":"AQAB"}}`, false},
		{"alg of another case", `{"alg":"rs256","kid":"key-1"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(t, is, ti.SignRaw(t, kid, tc.header, ti.Claims(nil)))
			if tc.accepted != (err == nil) {
				t.Fatalf("accepted=%v, want %v (err %v)", err == nil, tc.accepted, err)
			}
			var d *authn.Denial
			if err != nil && (!errors.As(err, &d) || d.Retryable) {
				t.Fatalf("want a clean denial, got %v", err)
			}
		})
	}
}

// Google's tokens may carry iss "accounts.google.com" for the issuer
// https://accounts.google.com; go-oidc accepts that legacy form for Google alone, and so
// kube-apiserver does. For any other issuer a scheme-less iss is another issuer.
func TestGoogleLegacyIssuer(t *testing.T) {
	ti := issuertest.New(t)
	ti.NameIssuer("https://accounts.google.com")
	cfg := ti.Config()
	cfg.Issuer.URL = "https://accounts.google.com"
	cfg.Issuer.DiscoveryURL = ti.URL + "/.well-known/openid-configuration"
	is := start(t, cfg, issuer.Options{})
	for _, iss := range []string{"https://accounts.google.com", "accounts.google.com"} {
		if _, err := verify(t, is, ti.Token(t, map[string]any{"iss": iss})); err != nil {
			t.Errorf("iss %q: want accepted, got %v", iss, err)
		}
	}
	if _, err := verify(t, is, ti.Token(t, map[string]any{"iss": "accounts.google.com.evil"})); err == nil {
		t.Error("iss accounts.google.com.evil was accepted")
	}
}
