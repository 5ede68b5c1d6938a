package issuer

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

// identity applies the claim validation rules and claim mappings to verified claims: the
// claim forms as before, and the expression forms compiled in cfg.Expressions. Without
// expressions, the claims are never converted for CEL.
func (i *Issuer) identity(ctx context.Context, claims map[string]any) (*authn.Identity, error) {
	for _, r := range i.cfg.ClaimValidationRules {
		if r.Claim == "" {
			continue // an expression rule, evaluated below
		}
		got, ok := claims[r.Claim].(string)
		if !ok || got != r.RequiredValue {
			return nil, authn.Record(ctx, "claim rule "+r.Claim, "", authn.Deny(authn.ReasonClaimRule,
				"claim %q must be the string %q, got %s", r.Claim, r.RequiredValue, describe(claims, r.Claim)))
		}
		if authn.Traced(ctx) {
			authn.Record(ctx, "claim rule "+r.Claim, "= "+r.RequiredValue, nil)
		}
	}
	var cel *celClaims
	if x := i.cfg.Expressions; !x.ClaimsEmpty() {
		cel = &celClaims{x: x, vars: expression.ClaimsVars(claims), budget: expression.NewBudget()}
		if err := cel.validate(ctx); err != nil {
			return nil, err
		}
	}
	id := &authn.Identity{Issuer: i.URL()}
	id.SetClaims(claims)
	id.Subject, _ = claims["sub"].(string)
	id.Email, _ = claims["email"].(string)
	if v, present := claims["email_verified"]; present {
		verified, isBool := v.(bool)
		verified = isBool && verified // anything but true counts as unverified
		id.EmailVerified = authn.Verified(verified)
	}
	m := i.cfg.ClaimMappings

	if cel != nil && cel.x.Username != nil {
		name, err := cel.username(ctx)
		if err != nil {
			return nil, authn.Record(ctx, "username", "", err)
		}
		id.User.Name = name
		if authn.Traced(ctx) {
			recordf(ctx, "username", "%q from %s", name, cel.x.Username.Field())
		}
	} else {
		name, err := i.username(claims, id)
		if err != nil {
			return nil, authn.Record(ctx, "username", "", err)
		}
		id.User.Name = name
		if authn.Traced(ctx) {
			recordf(ctx, "username", "%q from claim %q", name, m.Username.Claim)
		}
	}

	switch {
	case m.Groups.Claim != "":
		raw, err := stringOrList(claims, m.Groups.Claim)
		if err != nil {
			return nil, authn.Record(ctx, "groups", "", authn.Deny(authn.ReasonGroups, "%w", err))
		}
		id.Groups = raw
		id.User.Groups = dropReserved(ctx, raw, *m.Groups.Prefix)
		if authn.Traced(ctx) {
			recordf(ctx, "groups", "%q", id.User.Groups)
		}
	case cel != nil && cel.x.Groups != nil:
		raw, err := cel.x.Groups.Strings(ctx, cel.vars, &cel.budget)
		if err != nil {
			return nil, authn.Record(ctx, "groups", "", authn.Deny(authn.ReasonGroups, "%s: %w", cel.x.Groups.Field(), err))
		}
		// The mapping's mapGroups entries match these values, as they match a groups claim.
		id.Groups = raw
		id.User.Groups = dropReserved(ctx, raw, "")
		if authn.Traced(ctx) {
			recordf(ctx, "groups", "%q from %s", id.User.Groups, cel.x.Groups.Field())
		}
	}

	switch {
	case m.UID.Claim != "":
		uid, ok := claims[m.UID.Claim].(string)
		if !ok {
			return nil, authn.Record(ctx, "uid", "", authn.Deny(authn.ReasonUID,
				"uid claim %q must be a string, got %s", m.UID.Claim, describe(claims, m.UID.Claim)))
		}
		id.User.UID = uid
		if authn.Traced(ctx) {
			recordf(ctx, "uid", "%q", uid)
		}
	case cel != nil && cel.x.UID != nil:
		uid, err := cel.x.UID.String(ctx, cel.vars, &cel.budget)
		if err != nil {
			return nil, authn.Record(ctx, "uid", "", authn.Deny(authn.ReasonUID, "%s: %w", cel.x.UID.Field(), err))
		}
		id.User.UID = uid
		if authn.Traced(ctx) {
			recordf(ctx, "uid", "%q from %s", uid, cel.x.UID.Field())
		}
	}

	if jti, ok := claims["jti"].(string); ok && jti != "" {
		id.User.Extra = map[string][]string{CredentialIDKey: {"JTI=" + jti}}
	}
	if cel != nil {
		for _, e := range cel.x.Extra {
			values, err := e.Program.Strings(ctx, cel.vars, &cel.budget)
			if err != nil {
				return nil, authn.Record(ctx, "extra "+e.Key, "", authn.Deny(authn.ReasonExtra, "%s: %w", e.Program.Field(), err))
			}
			if len(values) == 0 {
				continue // as in kube-apiserver, a key with no values is left out
			}
			if id.User.Extra == nil {
				id.User.Extra = make(map[string][]string, len(cel.x.Extra))
			}
			id.User.Extra[e.Key] = values
			if authn.Traced(ctx) {
				recordf(ctx, "extra "+e.Key, "%q", values)
			}
		}
	}
	return id, nil
}

// celClaims evaluates one token's claims with the issuer's expressions; every expression
// evaluated for the token spends from one budget.
type celClaims struct {
	x      *config.Expressions
	vars   *expression.Vars
	budget expression.Budget
}

// validate applies the claimValidationRules written with expression: each must be true.
func (c *celClaims) validate(ctx context.Context) error {
	for _, r := range c.x.ClaimValidationRules {
		p := r.Program
		ok, err := p.Bool(ctx, c.vars, &c.budget)
		if err != nil {
			return authn.Record(ctx, "claim rule", "", authn.Deny(authn.ReasonClaimRule, "%s: %w", p.Field(), err))
		}
		if !ok {
			return authn.Record(ctx, "claim rule", "", authn.Deny(authn.ReasonClaimRule,
				"%s: validation expression '%s' failed: %s", p.Field(), p.Text(), r.Message))
		}
		if authn.Traced(ctx) {
			recordf(ctx, "claim rule", "%s is true", p.Text())
		}
	}
	return nil
}

// username evaluates the username expression: a non-empty string, which (unlike in
// kube-apiserver) may not start with system:.
func (c *celClaims) username(ctx context.Context) (string, error) {
	p := c.x.Username
	name, err := p.String(ctx, c.vars, &c.budget)
	if err != nil {
		return "", authn.Deny(authn.ReasonUsername, "%s: %w", p.Field(), err)
	}
	if name == "" {
		return "", authn.Deny(authn.ReasonUsername, "%s: expression '%s' gave an empty username", p.Field(), p.Text())
	}
	if strings.HasPrefix(name, ReservedPrefix) {
		return "", authn.Deny(authn.ReasonReservedUsername, "username %q from %s starts with %q, which only Kubernetes may assign", name, p.Field(), ReservedPrefix)
	}
	return name, nil
}

// recordf records a successful check. Callers check authn.Traced first, so that the hot
// path neither formats the detail nor boxes its arguments.
func recordf(ctx context.Context, name, format string, args ...any) {
	authn.Record(ctx, name, fmt.Sprintf(format, args...), nil)
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

// ValidatesUsers reports whether the issuer has userValidationRules.
func (i *Issuer) ValidatesUsers() bool {
	return i.cfg.Expressions != nil && len(i.cfg.Expressions.UserValidationRules) > 0
}

// ValidateUser applies the userValidationRules to the final user, after the identity mapping:
// each must be true. It implements authn.UserValidator.
func (i *Issuer) ValidateUser(ctx context.Context, u authn.User) error {
	if !i.ValidatesUsers() {
		return nil
	}
	vars, budget := expression.UserVars(u), expression.NewBudget()
	for _, r := range i.cfg.Expressions.UserValidationRules {
		p := r.Program
		ok, err := p.Bool(ctx, vars, &budget)
		if err != nil {
			return authn.Record(ctx, "user rule", "", authn.Deny(authn.ReasonUserRule, "%s: %w", p.Field(), err))
		}
		if !ok {
			return authn.Record(ctx, "user rule", "", authn.Deny(authn.ReasonUserRule,
				"%s: validation expression '%s' failed: %s", p.Field(), p.Text(), r.Message))
		}
		if authn.Traced(ctx) {
			recordf(ctx, "user rule", "%s is true", p.Text())
		}
	}
	return nil
}

func (i *Issuer) username(claims map[string]any, id *authn.Identity) (string, error) {
	m := i.cfg.ClaimMappings.Username
	v, ok := claims[m.Claim].(string)
	if !ok {
		return "", authn.Deny(authn.ReasonUsername, "username claim %q must be a string, got %s", m.Claim, describe(claims, m.Claim))
	}
	if v == "" {
		return "", authn.Deny(authn.ReasonUsername, "username claim %q is empty", m.Claim)
	}
	if m.Claim == "email" && id.EmailVerified != nil && !*id.EmailVerified {
		return "", authn.Deny(authn.ReasonEmailNotVerified, "email %q is not verified (email_verified is %v)", v, claims["email_verified"])
	}
	name := *m.Prefix + v
	if strings.HasPrefix(name, ReservedPrefix) {
		return "", authn.Deny(authn.ReasonReservedUsername, "username %q from claim %q starts with %q, which only Kubernetes may assign", name, m.Claim, ReservedPrefix)
	}
	return name, nil
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
