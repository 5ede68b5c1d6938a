package reference

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	apiserver "k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/oidc"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/claims"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
)

// outcome is what an authenticator answers for one token: a user, or a denial.
type outcome struct {
	OK     bool
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
	// Err is the denial, for the log; outcomes compare by the user only.
	Err string
}

func (o outcome) String() string {
	if !o.OK {
		return "denied"
	}
	keys := slices.Sorted(maps.Keys(o.Extra))
	extra := make([]string, len(keys))
	for i, k := range keys {
		extra[i] = fmt.Sprintf("%s=%q", k, o.Extra[k])
	}
	return fmt.Sprintf("user %q uid %q groups %q extra {%s}", o.Name, o.UID, o.Groups, strings.Join(extra, " "))
}

func (o outcome) equal(p outcome) bool {
	if o.OK != p.OK {
		return false
	}
	if !o.OK {
		return true
	}
	return o.Name == p.Name && o.UID == p.UID && slices.Equal(o.Groups, p.Groups) &&
		maps.EqualFunc(o.Extra, p.Extra, slices.Equal[[]string])
}

func denied(err error) outcome { return outcome{Err: err.Error()} }

func userOutcome(name, uid string, groups []string, extra map[string][]string) outcome {
	o := outcome{OK: true, Name: name, UID: uid}
	if len(groups) > 0 {
		o.Groups = groups
	}
	if len(extra) > 0 {
		o.Extra = extra
	}
	return o
}

// ours authenticates token with oidc-authenticator's issuer for entry, as the server does
// without an identity mapping: verification, claim rules and mappings, user rules.
func ours(t *testing.T, entry config.JWTAuthenticator, token string) outcome {
	t.Helper()
	if errs := config.ValidateJWTAuthenticator(&entry, field.NewPath("jwt").Index(0)); len(errs) > 0 {
		t.Fatalf("our validation refused the entry: %v", errs.ToAggregate())
	}
	is, err := issuer.New(entry, issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go is.Run(ctx)
	if err := is.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	validators := map[string]authn.UserValidator{}
	if is.ValidatesUsers() {
		validators[is.URL()] = is
	}
	a, err := authn.New(map[string]authn.Verifier{is.URL(): is}, nil, authn.Options{UserValidators: validators})
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Authenticate(ctx, token)
	if err != nil {
		return denied(err)
	}
	return userOutcome(res.User.Name, res.User.UID, res.User.Groups, res.User.Extra)
}

// staticCA serves the test issuer's CA to kube-apiserver's authenticator.
type staticCA string

func (c staticCA) CurrentCABundleContent() []byte { return []byte(c) }

// theirs authenticates token with kube-apiserver's own JWT authenticator for the same entry.
func theirs(t *testing.T, entry config.JWTAuthenticator, token string) outcome {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := oidc.New(ctx, oidc.Options{
		JWTAuthenticator:     toAPIServer(entry),
		CAContentProvider:    staticCA(entry.Issuer.CertificateAuthority),
		SupportedSigningAlgs: []string{"RS256"},
	})
	if err != nil {
		t.Fatalf("kube-apiserver refused the entry: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for a.HealthCheck() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver's authenticator did not initialise: %v", a.HealthCheck())
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, ok, err := a.AuthenticateToken(ctx, token)
	// kube-apiserver discovers a distributed claim's issuer lazily, in the background, after
	// the first token that needs it (denied meanwhile): judge it once that is done.
	for err != nil && strings.Contains(err.Error(), "verifier not initialized") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		resp, ok, err = a.AuthenticateToken(ctx, token)
	}
	switch {
	case err != nil:
		return denied(err)
	case !ok:
		return denied(fmt.Errorf("not authenticated"))
	}
	u := resp.User
	return userOutcome(u.GetName(), u.GetUID(), u.GetGroups(), u.GetExtra())
}

// toAPIServer is entry in kube-apiserver's own types: the same fields, one for one.
func toAPIServer(e config.JWTAuthenticator) apiserver.JWTAuthenticator {
	out := apiserver.JWTAuthenticator{
		Issuer: apiserver.Issuer{
			URL:                  e.Issuer.URL,
			DiscoveryURL:         e.Issuer.DiscoveryURL,
			CertificateAuthority: e.Issuer.CertificateAuthority,
			Audiences:            e.Issuer.Audiences,
			AudienceMatchPolicy:  apiserver.AudienceMatchPolicyType(e.Issuer.AudienceMatchPolicy),
		},
		ClaimMappings: apiserver.ClaimMappings{
			Username: apiserver.PrefixedClaimOrExpression(e.ClaimMappings.Username),
			Groups:   apiserver.PrefixedClaimOrExpression(e.ClaimMappings.Groups),
			UID:      apiserver.ClaimOrExpression(e.ClaimMappings.UID),
		},
	}
	for _, r := range e.ClaimValidationRules {
		out.ClaimValidationRules = append(out.ClaimValidationRules, apiserver.ClaimValidationRule(r))
	}
	for _, x := range e.ClaimMappings.Extra {
		out.ClaimMappings.Extra = append(out.ClaimMappings.Extra, apiserver.ExtraMapping(x))
	}
	for _, r := range e.UserValidationRules {
		out.UserValidationRules = append(out.UserValidationRules, apiserver.UserValidationRule(r))
	}
	return out
}

// difference is a deliberate difference from kube-apiserver: why, and how our outcome
// follows from the apiserver's.
type difference struct {
	why   string
	apply func(outcome) outcome
}

// reservedNames is the system: guard: a token's claims (through a claim or an expression)
// may not give a system: username (denied) or system: groups (dropped).
var reservedNames = &difference{
	why: "system: names from a token's claims are refused: such a username is denied and such groups are dropped",
	apply: func(o outcome) outcome {
		if !o.OK {
			return o
		}
		if strings.HasPrefix(o.Name, claims.ReservedPrefix) {
			return denied(fmt.Errorf("reserved username %q", o.Name))
		}
		var groups []string
		for _, g := range o.Groups {
			if !strings.HasPrefix(g, claims.ReservedPrefix) {
				groups = append(groups, g)
			}
		}
		o.Groups = groups
		return o
	},
}

// alice is the user issuertest's default token gives with its default entry.
var alice = outcome{OK: true, Name: "alice@example.com", UID: "alice-sub", Groups: []string{"oidc:developers", "oidc:admins"}}

// accepted is a difference where kube-apiserver denies and we accept, with the user we give.
func accepted(why string, u outcome) *difference {
	return &difference{why: why, apply: func(outcome) outcome { return u }}
}

// refused is a difference where kube-apiserver accepts and we deny.
func refused(why string) *difference {
	return &difference{why: why, apply: func(outcome) outcome { return outcome{Err: why} }}
}

// The deliberate differences, each named in docs/configuration.md.
var (
	// CEL's maps range over their keys; kube-apiserver's claims variable yields the claims'
	// values instead (its lazy map's iterator returns values).
	claimNamesIterated = "a comprehension over claims ranges over the claim names, as over any CEL map; kube-apiserver's ranges over the values"
	// kube-apiserver accepts a list of strings only when CEL backs it with []any or []ref.Val,
	// so split() (backed by []string) is refused there.
	anyStringList = "any CEL list of strings is accepted, including split()'s; kube-apiserver refuses lists that CEL backs with a Go []string"
	// Claim forms, unchanged by the CEL work (they predate it):
	emptyUsername = "an empty username from a claim is denied; kube-apiserver authenticates the empty username"
	nullGroups    = "a groups claim that is null is denied; kube-apiserver reads it as no groups"
)

// logTable prints the comparison, one line per case, for the record.
func logTable(t *testing.T, rows [][3]string) {
	t.Helper()
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "\n%-8s %s\n         %s", r[0], r[1], r[2])
	}
	t.Log(b.String())
}
