package issuer

import (
	"context"
	"fmt"
	"strings"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// ReservedPrefix starts the names Kubernetes keeps for itself. A token's own claims may
// never produce them: a username with it is denied, a group with it is dropped.
const ReservedPrefix = "system:"

// CredentialIDKey is the extra key kube-apiserver fills from the token's jti.
const CredentialIDKey = "authentication.kubernetes.io/credential-id"

// identity applies the claim validation rules and claim mappings to verified claims.
func (i *Issuer) identity(ctx context.Context, claims map[string]any) (*authn.Identity, error) {
	for _, r := range i.cfg.ClaimValidationRules {
		got, ok := claims[r.Claim].(string)
		if !ok || got != r.RequiredValue {
			return nil, authn.Record(ctx, "claim rule "+r.Claim, "", authn.Deny(authn.ReasonClaimRule,
				"claim %q must be the string %q, got %s", r.Claim, r.RequiredValue, describe(claims, r.Claim)))
		}
		authn.Record(ctx, "claim rule "+r.Claim, "= "+r.RequiredValue, nil)
	}
	id := &authn.Identity{Issuer: i.URL(), Claims: claims}
	id.Subject, _ = claims["sub"].(string)
	id.Email, _ = claims["email"].(string)
	if v, present := claims["email_verified"]; present {
		verified, isBool := v.(bool)
		verified = isBool && verified // anything but true counts as unverified
		id.EmailVerified = &verified
	}
	m := i.cfg.ClaimMappings

	name, err := i.username(claims, id)
	if err != nil {
		return nil, authn.Record(ctx, "username", "", err)
	}
	id.User.Name = name
	authn.Record(ctx, "username", fmt.Sprintf("%q from claim %q", name, m.Username.Claim), nil)

	if m.Groups.Claim != "" {
		raw, err := stringOrList(claims, m.Groups.Claim)
		if err != nil {
			return nil, authn.Record(ctx, "groups", "", authn.Deny(authn.ReasonGroups, "%w", err))
		}
		id.Groups = raw
		for _, g := range raw {
			g = *m.Groups.Prefix + g
			if strings.HasPrefix(g, ReservedPrefix) {
				authn.Record(ctx, "group "+g, "dropped: tokens may not claim system: groups", nil)
				continue
			}
			id.User.Groups = append(id.User.Groups, g)
		}
		authn.Record(ctx, "groups", fmt.Sprintf("%q", id.User.Groups), nil)
	}

	if m.UID.Claim != "" {
		uid, ok := claims[m.UID.Claim].(string)
		if !ok {
			return nil, authn.Record(ctx, "uid", "", authn.Deny(authn.ReasonUID,
				"uid claim %q must be a string, got %s", m.UID.Claim, describe(claims, m.UID.Claim)))
		}
		id.User.UID = uid
		authn.Record(ctx, "uid", fmt.Sprintf("%q", uid), nil)
	}
	if jti, ok := claims["jti"].(string); ok && jti != "" {
		id.User.Extra = map[string][]string{CredentialIDKey: {"JTI=" + jti}}
	}
	return id, nil
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
