package issuer_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/claims"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

// start runs an Issuer for ti until the test ends and waits until it is ready.
func start(t testing.TB, cfg config.JWTAuthenticator, opts issuer.Options) *issuer.Issuer {
	t.Helper()
	is, err := issuer.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go is.Run(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := is.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return is
}

func verify(t *testing.T, is *issuer.Issuer, raw string) (*authn.Identity, error) {
	t.Helper()
	tok, err := authn.ParseUnverified(raw)
	if err != nil {
		return nil, err
	}
	return is.Verify(context.Background(), tok)
}

func reasonOf(err error) authn.Reason {
	var d *authn.Denial
	if errors.As(err, &d) {
		return d.Reason
	}
	return ""
}

// unsignedToken builds a token with the given header by hand, for algorithms no library
// will sign with here.
func unsignedToken(t *testing.T, header map[string]any, claims map[string]any, sig string) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + sig
}

func hs256Token(t *testing.T, secret []byte, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]any{"alg": "HS256", "kid": issuertest.DefaultKeyID})
	c, _ := json.Marshal(claims)
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(m.Sum(nil))
}

func TestVerifyRules(t *testing.T) {
	ti := issuertest.New(t)
	ti.AddKey(t, "ec-1", "ES256")
	ti.AddKey(t, "ps-1", "PS256")
	is := start(t, ti.Config(), issuer.Options{})
	now := time.Now()

	tests := []struct {
		name       string
		token      func() string
		wantReason authn.Reason // "" = accepted
		wantUser   string
		wantGroups []string
	}{
		{
			name:       "valid RS256 token: username from email, groups prefixed (claimMappings)",
			token:      func() string { return ti.Token(t, nil) },
			wantUser:   "alice@example.com",
			wantGroups: []string{"oidc:developers", "oidc:admins"},
		},
		{
			name:     "ES256 is accepted (every asymmetric JWS alg the apiserver allows)",
			token:    func() string { return ti.Sign(t, "ec-1", "ES256", ti.Claims(nil)) },
			wantUser: "alice@example.com", wantGroups: []string{"oidc:developers", "oidc:admins"},
		},
		{
			name:     "PS256 is accepted",
			token:    func() string { return ti.Sign(t, "ps-1", "PS256", ti.Claims(nil)) },
			wantUser: "alice@example.com", wantGroups: []string{"oidc:developers", "oidc:admins"},
		},
		{
			name:     "no kid: every key of the issuer is tried, as the apiserver does",
			token:    func() string { return ti.Sign(t, "", "RS256", ti.Claims(nil)) },
			wantUser: "alice@example.com", wantGroups: []string{"oidc:developers", "oidc:admins"},
		},
		{
			name:       "exp in the past is denied, with no leeway",
			token:      func() string { return ti.Token(t, map[string]any{"exp": now.Add(-2 * time.Second).Unix()}) },
			wantReason: authn.ReasonExpired,
		},
		{
			name:       "exp is required",
			token:      func() string { return ti.Token(t, map[string]any{"exp": nil}) },
			wantReason: authn.ReasonExpired,
		},
		{
			name: "nbf beyond the leeway is denied",
			token: func() string {
				return ti.Token(t, map[string]any{"nbf": now.Add(issuer.NotBeforeLeeway + time.Minute).Unix()})
			},
			wantReason: authn.ReasonNotYetValid,
		},
		{
			name:     "nbf within the leeway is honoured as clock skew",
			token:    func() string { return ti.Token(t, map[string]any{"nbf": now.Add(time.Minute).Unix()}) },
			wantUser: "alice@example.com", wantGroups: []string{"oidc:developers", "oidc:admins"},
		},
		{
			name: "nbf just inside the leeway (clock skew of 4m59s) is honoured",
			token: func() string {
				return ti.Token(t, map[string]any{"nbf": now.Add(issuer.NotBeforeLeeway - time.Second).Unix()})
			},
			wantUser: "alice@example.com", wantGroups: []string{"oidc:developers", "oidc:admins"},
		},
		{
			name:     "iat is not checked, as in kube-apiserver: an iat ahead of our clock is no reason to deny",
			token:    func() string { return ti.Token(t, map[string]any{"iat": now.Add(time.Hour).Unix()}) },
			wantUser: "alice@example.com", wantGroups: []string{"oidc:developers", "oidc:admins"},
		},
		{
			name:       "aud must contain a configured audience",
			token:      func() string { return ti.Token(t, map[string]any{"aud": "someone-else"}) },
			wantReason: authn.ReasonAudience,
		},
		{
			name:     "aud as an array containing the audience is accepted",
			token:    func() string { return ti.Token(t, map[string]any{"aud": []any{"other", "kubernetes"}}) },
			wantUser: "alice@example.com", wantGroups: []string{"oidc:developers", "oidc:admins"},
		},
		{
			name: "alg none is never accepted",
			token: func() string {
				return unsignedToken(t, map[string]any{"alg": "none"}, ti.Claims(nil), "")
			},
			wantReason: authn.ReasonMalformed, // an empty signature is not a signed JWT
		},
		{
			name: "alg none with a signature part is refused by algorithm",
			token: func() string {
				return unsignedToken(t, map[string]any{"alg": "none"}, ti.Claims(nil), "AAAA")
			},
			wantReason: authn.ReasonAlgorithm,
		},
		{
			name:       "HS256 (a symmetric alg, keyed with anything public) is refused",
			token:      func() string { return hs256Token(t, []byte("public-key-bytes"), ti.Claims(nil)) },
			wantReason: authn.ReasonAlgorithm,
		},
		{
			name: "tampered payload fails the signature",
			token: func() string {
				parts := strings.Split(ti.Token(t, nil), ".")
				c, _ := json.Marshal(ti.Claims(map[string]any{"email": "mallory@example.com"}))
				parts[1] = base64.RawURLEncoding.EncodeToString(c)
				return strings.Join(parts, ".")
			},
			wantReason: authn.ReasonBadSignature,
		},
		{
			name: "tampered signature fails",
			token: func() string {
				tok := ti.Token(t, nil)
				last := tok[len(tok)-2]
				repl := byte('A')
				if last == 'A' {
					repl = 'B'
				}
				return tok[:len(tok)-2] + string(repl) + tok[len(tok)-1:]
			},
			wantReason: authn.ReasonBadSignature,
		},
		{
			name:       "email_verified false with username from email is denied",
			token:      func() string { return ti.Token(t, map[string]any{"email_verified": false}) },
			wantReason: authn.ReasonEmailNotVerified,
		},
		{
			name:       "email_verified that is not a boolean counts as unverified",
			token:      func() string { return ti.Token(t, map[string]any{"email_verified": "true"}) },
			wantReason: authn.ReasonEmailNotVerified,
		},
		{
			name:     "email_verified absent passes, as in the apiserver",
			token:    func() string { return ti.Token(t, map[string]any{"email_verified": nil}) },
			wantUser: "alice@example.com", wantGroups: []string{"oidc:developers", "oidc:admins"},
		},
		{
			name:       "username claim absent is denied",
			token:      func() string { return ti.Token(t, map[string]any{"email": nil}) },
			wantReason: authn.ReasonUsername,
		},
		{
			name:       "username claim that is not a string is denied",
			token:      func() string { return ti.Token(t, map[string]any{"email": 42}) },
			wantReason: authn.ReasonUsername,
		},
		{
			name:     "groups claim as a single string",
			token:    func() string { return ti.Token(t, map[string]any{"groups": "developers"}) },
			wantUser: "alice@example.com", wantGroups: []string{"oidc:developers"},
		},
		{
			name:     "groups claim absent gives no groups",
			token:    func() string { return ti.Token(t, map[string]any{"groups": nil}) },
			wantUser: "alice@example.com",
		},
		{
			name:       "groups claim of another type is denied",
			token:      func() string { return ti.Token(t, map[string]any{"groups": map[string]any{"a": 1}}) },
			wantReason: authn.ReasonGroups,
		},
		{
			name:       "groups list with a non-string element is denied",
			token:      func() string { return ti.Token(t, map[string]any{"groups": []any{"a", 1}}) },
			wantReason: authn.ReasonGroups,
		},
		// The registered claims must have the types go-oidc's verifier (and so kube-apiserver)
		// decodes them into; the signature is checked first.
		{
			name:       "aud that is a number is invalid",
			token:      func() string { return ti.Token(t, map[string]any{"aud": 5}) },
			wantReason: authn.ReasonInvalidClaims,
		},
		{
			name:       "sub that is a number is invalid",
			token:      func() string { return ti.Token(t, map[string]any{"sub": 5}) },
			wantReason: authn.ReasonInvalidClaims,
		},
		{
			name:       "nonce that is a number is invalid",
			token:      func() string { return ti.Token(t, map[string]any{"nonce": 5}) },
			wantReason: authn.ReasonInvalidClaims,
		},
		{
			name:       "iat that is not a number is invalid",
			token:      func() string { return ti.Token(t, map[string]any{"iat": "yesterday"}) },
			wantReason: authn.ReasonInvalidClaims,
		},
		{
			name:       "_claim_names naming a source the token lacks is invalid",
			token:      func() string { return ti.Token(t, map[string]any{"_claim_names": map[string]any{"roles": "src1"}}) },
			wantReason: authn.ReasonInvalidClaims,
		},
		{
			name: "distributed claims with their source are accepted, not resolved",
			token: func() string {
				return ti.Token(t, map[string]any{"_claim_names": map[string]any{"roles": "src1"},
					"_claim_sources": map[string]any{"src1": map[string]any{"endpoint": "https://claims.example"}}})
			},
			wantUser: "alice@example.com", wantGroups: []string{"oidc:developers", "oidc:admins"},
		},
		{
			name: "exp as a numeric string is taken, as go-oidc takes it",
			token: func() string {
				return ti.Token(t, map[string]any{"exp": strconv.FormatInt(now.Add(time.Hour).Unix(), 10)})
			},
			wantUser: "alice@example.com", wantGroups: []string{"oidc:developers", "oidc:admins"},
		},
		{
			name:       "uid claim absent is denied, as in the apiserver",
			token:      func() string { return ti.Token(t, map[string]any{"sub": nil}) },
			wantReason: authn.ReasonUID,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := verify(t, is, tc.token())
			if tc.wantReason != "" {
				if got := reasonOf(err); got != tc.wantReason {
					t.Fatalf("want denial %q, got %q (err %v)", tc.wantReason, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("want accepted, got %v", err)
			}
			if id.User.Name != tc.wantUser || !slices.Equal(id.User.Groups, tc.wantGroups) {
				t.Fatalf("user %q groups %q; want %q %q", id.User.Name, id.User.Groups, tc.wantUser, tc.wantGroups)
			}
			if id.Issuer != ti.URL || id.Subject != "alice-sub" && id.User.UID != "alice-sub" {
				t.Fatalf("identity issuer %q subject %q uid %q", id.Issuer, id.Subject, id.User.UID)
			}
		})
	}
}

// Tokens may not make their holders part of Kubernetes' own namespace: a system: username
// from a claim is denied and a system: group from a claim is dropped.
func TestReservedNamesFromClaims(t *testing.T) {
	ti := issuertest.New(t)
	cfg := ti.Config()
	empty := ""
	cfg.ClaimMappings.Groups.Prefix = &empty
	cfg.ClaimMappings.Username = config.PrefixedClaimOrExpression{Claim: "preferred_username", Prefix: &empty}
	is := start(t, cfg, issuer.Options{})

	_, err := verify(t, is, ti.Token(t, map[string]any{"preferred_username": "system:admin"}))
	if reasonOf(err) != authn.ReasonReservedUsername {
		t.Fatalf("system: username: want %q, got %v", authn.ReasonReservedUsername, err)
	}
	id, err := verify(t, is, ti.Token(t, map[string]any{
		"preferred_username": "alice", "groups": []any{"system:masters", "developers", "system:nodes"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.User.Groups, []string{"developers"}) {
		t.Fatalf("groups %q: want system: groups dropped", id.User.Groups)
	}
	if !slices.Equal(id.Groups, []string{"system:masters", "developers", "system:nodes"}) {
		t.Fatalf("raw groups %q must be kept for the mapping", id.Groups)
	}
	// A prefix that keeps the value out of system: makes it harmless.
	prefixed := "oidc:"
	cfg.ClaimMappings.Username.Prefix = &prefixed
	is2 := start(t, cfg, issuer.Options{})
	id, err = verify(t, is2, ti.Token(t, map[string]any{"preferred_username": "system:admin"}))
	if err != nil || id.User.Name != "oidc:system:admin" {
		t.Fatalf("prefixed username: got %v, %v", id, err)
	}
}

// claimValidationRules with claim/requiredValue: the claim must be a string equal to the value.
func TestClaimValidationRules(t *testing.T) {
	ti := issuertest.New(t)
	cfg := ti.Config()
	cfg.ClaimValidationRules = []config.ClaimValidationRule{{Claim: "hd", RequiredValue: "example.com"}}
	is := start(t, cfg, issuer.Options{})
	for _, tc := range []struct {
		name string
		hd   any
		ok   bool
	}{
		{"equal", "example.com", true},
		{"different", "evil.com", false},
		{"absent", nil, false},
		{"not a string", []any{"example.com"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(t, is, ti.Token(t, map[string]any{"hd": tc.hd}))
			if tc.ok != (err == nil) {
				t.Fatalf("hd=%v: err %v", tc.hd, err)
			}
			if !tc.ok && reasonOf(err) != authn.ReasonClaimRule {
				t.Fatalf("want %q, got %v", authn.ReasonClaimRule, err)
			}
		})
	}
}

func TestCredentialIDFromJTI(t *testing.T) {
	ti := issuertest.New(t)
	is := start(t, ti.Config(), issuer.Options{})
	id, err := verify(t, is, ti.Token(t, map[string]any{"jti": "abc"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := id.User.Extra[claims.CredentialIDKey]; !slices.Equal(got, []string{"JTI=abc"}) {
		t.Fatalf("extra %v", id.User.Extra)
	}
}

func TestMultipleAudiencesMatchAny(t *testing.T) {
	ti := issuertest.New(t)
	cfg := ti.Config()
	cfg.Issuer.Audiences = []string{"kubernetes", "kubectl"}
	cfg.Issuer.AudienceMatchPolicy = config.AudienceMatchPolicyMatchAny
	is := start(t, cfg, issuer.Options{})
	if _, err := verify(t, is, ti.Token(t, map[string]any{"aud": "kubectl"})); err != nil {
		t.Fatalf("second audience: %v", err)
	}
	if _, err := verify(t, is, ti.Token(t, map[string]any{"aud": "other"})); reasonOf(err) != authn.ReasonAudience {
		t.Fatalf("other audience: %v", err)
	}
}

// forgeKid rewrites the kid of a token's header, leaving the (now meaningless) signature.
func forgeKid(t *testing.T, raw, kid string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var header map[string]any
	if err := json.Unmarshal(h, &header); err != nil {
		t.Fatal(err)
	}
	header["kid"] = kid
	h, _ = json.Marshal(header)
	parts[0] = base64.RawURLEncoding.EncodeToString(h)
	return strings.Join(parts, ".")
}
