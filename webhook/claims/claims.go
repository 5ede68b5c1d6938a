// Package claims turns the claims of a verified token into a Kubernetes user, as
// kube-apiserver's JWT authenticator does: the claim validation rules, then one function per
// mapped field (username, groups, uid, extra, as its getUsername, getGroups, getUID and
// getExtra), and, after the identity mapping, the user validation rules.
//
// Each step's outcome is recorded for `oidc-authenticator verify` in one place (Mapper.step);
// the TokenReview path records nothing and formats nothing.
package claims

import (
	"context"
	"fmt"
	"strings"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/expression"
)

// ReservedPrefix starts the names Kubernetes keeps for itself. A token's own claims may
// never produce them: a username with it is denied, a group with it is dropped.
const ReservedPrefix = "system:"

// CredentialIDKey is the extra key kube-apiserver fills from the token's jti.
const CredentialIDKey = "authentication.kubernetes.io/credential-id"

// Mapper applies one jwt[] entry's claim rules and claim mappings.
type Mapper struct {
	issuer string
	cfg    config.JWTAuthenticator
}

// NewMapper returns the mapper of the entry for issuer; its expressions must be compiled
// (config validation does that).
func NewMapper(issuer string, cfg config.JWTAuthenticator) (*Mapper, error) {
	if cfg.WritesExpressions() && cfg.Expressions == nil {
		// Never serve with rules that would be skipped: validation compiles them.
		return nil, fmt.Errorf("issuer %s: its CEL expressions are not compiled; validate the configuration first", issuer)
	}
	return &Mapper{issuer: issuer, cfg: cfg}, nil
}

// token is one token's claims while they are mapped: every expression evaluated for it
// spends from one budget, and the claims are converted for CEL once, only when an expression
// needs them.
type token struct {
	claims map[string]any
	vars   *expression.Vars
	budget expression.Budget
}

// Identity applies the claim validation rules and the claim mappings to verified claims.
func (m *Mapper) Identity(ctx context.Context, c map[string]any) (*authn.Identity, error) {
	t := &token{claims: c}
	if x := m.cfg.Expressions; !x.ClaimsEmpty() {
		t.vars, t.budget = expression.ClaimsVars(c), expression.NewBudget()
	}
	if err := m.validate(ctx, t); err != nil {
		return nil, err
	}
	id := &authn.Identity{Issuer: m.issuer}
	id.SetClaims(c)
	id.Subject, _ = c["sub"].(string)
	id.Email, _ = c["email"].(string)
	if v, present := c["email_verified"]; present {
		verified, isBool := v.(bool)
		id.EmailVerified = authn.Verified(isBool && verified) // anything but true is unverified
	}
	var err error
	if id.User.Name, err = step(ctx, "username", m.username, t, id); err != nil {
		return nil, err
	}
	if id.Groups, err = step(ctx, "groups", m.groups, t, id); err != nil {
		return nil, err
	}
	id.User.Groups = dropReserved(ctx, id.Groups, m.groupsPrefix())
	if id.User.UID, err = step(ctx, "uid", m.uid, t, id); err != nil {
		return nil, err
	}
	if id.User.Extra, err = step(ctx, "extra", m.extra, t, id); err != nil {
		return nil, err
	}
	return id, nil
}

// step runs one mapped field and records its outcome when ctx is traced: the one place the
// mapping is explained.
func step[T any](ctx context.Context, name string, f func(context.Context, *token, *authn.Identity) (T, error), t *token, id *authn.Identity) (T, error) {
	v, err := f(ctx, t, id)
	if err != nil {
		return v, authn.Record(ctx, name, "", err)
	}
	if authn.Traced(ctx) {
		authn.Record(ctx, name, fmt.Sprintf("%q", any(v)), nil)
	}
	return v, nil
}

// validate applies the claimValidationRules: the claim forms (the claim must be the string
// requiredValue), then the expression forms (each must be true).
func (m *Mapper) validate(ctx context.Context, t *token) error {
	for _, r := range m.cfg.ClaimValidationRules {
		if r.Claim == "" {
			continue // an expression rule, evaluated below
		}
		if got, ok := t.claims[r.Claim].(string); !ok || got != r.RequiredValue {
			return authn.Record(ctx, "claim rule "+r.Claim, "", authn.Deny(authn.ReasonClaimRule,
				"claim %q must be the string %q, got %s", r.Claim, r.RequiredValue, describe(t.claims, r.Claim)))
		}
	}
	if m.cfg.Expressions == nil {
		return nil
	}
	for _, r := range m.cfg.Expressions.ClaimValidationRules {
		if err := rule(ctx, "claim rule", authn.ReasonClaimRule, r.Program, r.Message, t.vars, &t.budget); err != nil {
			return err
		}
	}
	return nil
}

// rule evaluates one validation rule (a claim or a user rule): it must be true.
func rule(ctx context.Context, name string, reason authn.Reason, p *expression.Program, message string, vars *expression.Vars, budget *expression.Budget) error {
	ok, err := p.Bool(ctx, vars, budget)
	if err != nil {
		return authn.Record(ctx, name, "", authn.Deny(reason, "%s: %w", p.Field(), err))
	}
	if !ok {
		return authn.Record(ctx, name, "", authn.Deny(reason, "%s: validation expression '%s' failed: %s", p.Field(), p.Text(), message))
	}
	return nil
}

// username is kube-apiserver's getUsername: the claim (a non-empty string, an email only when
// not marked unverified, prefixed) or the expression (a non-empty string); here neither may
// start with system:.
func (m *Mapper) username(ctx context.Context, t *token, id *authn.Identity) (string, error) {
	if x := m.cfg.Expressions; x != nil && x.Username != nil {
		p := x.Username
		name, err := p.String(ctx, t.vars, &t.budget)
		switch {
		case err != nil:
			return "", authn.Deny(authn.ReasonUsername, "%s: %w", p.Field(), err)
		case name == "":
			return "", authn.Deny(authn.ReasonUsername, "%s: expression '%s' gave an empty username", p.Field(), p.Text())
		case strings.HasPrefix(name, ReservedPrefix):
			return "", authn.Deny(authn.ReasonReservedUsername, "username %q from %s starts with %q, which only Kubernetes may assign", name, p.Field(), ReservedPrefix)
		}
		return name, nil
	}
	um := m.cfg.ClaimMappings.Username
	v, ok := t.claims[um.Claim].(string)
	switch {
	case !ok:
		return "", authn.Deny(authn.ReasonUsername, "username claim %q must be a string, got %s", um.Claim, describe(t.claims, um.Claim))
	case v == "":
		return "", authn.Deny(authn.ReasonUsername, "username claim %q is empty", um.Claim)
	case um.Claim == "email" && id.EmailVerified != nil && !*id.EmailVerified:
		return "", authn.Deny(authn.ReasonEmailNotVerified, "email %q is not verified (email_verified is %v)", v, t.claims["email_verified"])
	}
	name := *um.Prefix + v
	if strings.HasPrefix(name, ReservedPrefix) {
		return "", authn.Deny(authn.ReasonReservedUsername, "username %q from claim %q starts with %q, which only Kubernetes may assign", name, um.Claim, ReservedPrefix)
	}
	return name, nil
}

// groups is kube-apiserver's getGroups: the raw values of the claim (a string or a list of
// strings) or of the expression, before the prefix; the identity mapping's mapGroups match
// these.
func (m *Mapper) groups(ctx context.Context, t *token, _ *authn.Identity) ([]string, error) {
	if claim := m.cfg.ClaimMappings.Groups.Claim; claim != "" {
		raw, err := stringOrList(t.claims, claim)
		if err != nil {
			return nil, authn.Deny(authn.ReasonGroups, "%w", err)
		}
		return raw, nil
	}
	if x := m.cfg.Expressions; x != nil && x.Groups != nil {
		raw, err := x.Groups.Strings(ctx, t.vars, &t.budget)
		if err != nil {
			return nil, authn.Deny(authn.ReasonGroups, "%s: %w", x.Groups.Field(), err)
		}
		return raw, nil
	}
	return nil, nil
}

func (m *Mapper) groupsPrefix() string {
	if p := m.cfg.ClaimMappings.Groups.Prefix; m.cfg.ClaimMappings.Groups.Claim != "" && p != nil {
		return *p
	}
	return ""
}

// uid is kube-apiserver's getUID: a string claim or an expression's string.
func (m *Mapper) uid(ctx context.Context, t *token, _ *authn.Identity) (string, error) {
	if claim := m.cfg.ClaimMappings.UID.Claim; claim != "" {
		uid, ok := t.claims[claim].(string)
		if !ok {
			return "", authn.Deny(authn.ReasonUID, "uid claim %q must be a string, got %s", claim, describe(t.claims, claim))
		}
		return uid, nil
	}
	if x := m.cfg.Expressions; x != nil && x.UID != nil {
		uid, err := x.UID.String(ctx, t.vars, &t.budget)
		if err != nil {
			return "", authn.Deny(authn.ReasonUID, "%s: %w", x.UID.Field(), err)
		}
		return uid, nil
	}
	return "", nil
}

// extra is kube-apiserver's getExtra: the credential ID from jti, then each extra mapping's
// values; a key with no values is left out.
func (m *Mapper) extra(ctx context.Context, t *token, _ *authn.Identity) (map[string][]string, error) {
	var extra map[string][]string
	if jti, ok := t.claims["jti"].(string); ok && jti != "" {
		extra = map[string][]string{CredentialIDKey: {"JTI=" + jti}}
	}
	if m.cfg.Expressions == nil {
		return extra, nil
	}
	for _, e := range m.cfg.Expressions.Extra {
		values, err := e.Program.Strings(ctx, t.vars, &t.budget)
		if err != nil {
			return nil, authn.Deny(authn.ReasonExtra, "%s: %w", e.Program.Field(), err)
		}
		if len(values) == 0 {
			continue
		}
		if extra == nil {
			extra = make(map[string][]string, len(m.cfg.Expressions.Extra))
		}
		extra[e.Key] = values
	}
	return extra, nil
}

// ValidatesUsers reports whether the entry has userValidationRules.
func (m *Mapper) ValidatesUsers() bool {
	return m.cfg.Expressions != nil && len(m.cfg.Expressions.UserValidationRules) > 0
}

// ValidateUser applies the userValidationRules to the final user, after the identity mapping:
// each must be true.
func (m *Mapper) ValidateUser(ctx context.Context, u authn.User) error {
	if !m.ValidatesUsers() {
		return nil
	}
	vars, budget := expression.UserVars(u), expression.NewBudget()
	for _, r := range m.cfg.Expressions.UserValidationRules {
		if err := rule(ctx, "user rule", authn.ReasonUserRule, r.Program, r.Message, vars, &budget); err != nil {
			return err
		}
	}
	return nil
}

// dropReserved prefixes the raw groups and drops those that would start with system:.
func dropReserved(ctx context.Context, raw []string, prefix string) []string {
	if len(raw) == 0 {
		return nil
	}
	out := make([]string, 0, len(raw))
	for _, g := range raw {
		g = prefix + g
		if strings.HasPrefix(g, ReservedPrefix) {
			authn.Record(ctx, "group "+g, "dropped: tokens may not claim system: groups", nil)
			continue
		}
		out = append(out, g)
	}
	return out
}

// stringOrList reads a claim that is a string or a list of strings; absent means none.
func stringOrList(claims map[string]any, name string) ([]string, error) {
	switch v := claims[name].(type) {
	case nil:
		if _, present := claims[name]; present {
			return nil, fmt.Errorf("groups claim %q is null", name)
		}
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for n, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("groups claim %q: element %d is a %T, not a string", name, n, e)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("groups claim %q must be a string or a list of strings, got a %T", name, v)
	}
}

// describe says what a claim holds, for an error message, without echoing long values.
func describe(claims map[string]any, name string) string {
	v, ok := claims[name]
	if !ok {
		return "nothing (the claim is absent)"
	}
	if s, ok := v.(string); ok {
		if len(s) > 64 {
			s = s[:64] + "…"
		}
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("a %T", v)
}
