package mapping

import (
	"errors"
	"fmt"
	"strings"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// reservedPrefix starts usernames and groups that Kubernetes keeps for itself.
const reservedPrefix = "system:"

// template is a compiled username: literal text and {{claim}} placeholders.
type template struct {
	text  string
	parts []templatePart
	// prefix is the literal text before the first placeholder (all of text when it has none).
	prefix string
	// dynamic is true when the text has placeholders.
	dynamic bool
}

// templatePart is a literal when claim is "", else a placeholder for that claim.
type templatePart struct {
	literal string
	claim   string
}

// compileTemplate parses a username. Placeholders are written {{claim}} where claim is the
// name of a top-level claim made of letters, digits and _ . : -; a brace anywhere else is an
// error, because it is almost always a mistyped placeholder.
func compileTemplate(text string) (*template, error) {
	t := &template{text: text}
	rest := text
	for rest != "" {
		open := strings.Index(rest, "{{")
		lit := rest
		if open >= 0 {
			lit = rest[:open]
		}
		if strings.ContainsAny(lit, "{}") {
			return nil, fmt.Errorf("has a brace outside a placeholder in %q; placeholders are written {{claim}}", lit)
		}
		if lit != "" {
			t.parts = append(t.parts, templatePart{literal: lit})
		}
		if open < 0 {
			break
		}
		body := rest[open+2:]
		end := strings.Index(body, "}}")
		if end < 0 {
			return nil, fmt.Errorf("has %q with no closing }}", rest[open:])
		}
		name := body[:end]
		if err := checkClaimName(name); err != nil {
			return nil, fmt.Errorf("placeholder {{%s}}: %w", name, err)
		}
		t.parts = append(t.parts, templatePart{claim: name})
		rest = body[end+2:]
	}
	t.prefix = text
	for i, p := range t.parts {
		if p.claim != "" {
			t.dynamic = true
			t.prefix = ""
			if i > 0 {
				t.prefix = t.parts[0].literal
			}
			break
		}
	}
	return t, nil
}

// checkClaimName accepts names of [A-Za-z0-9_.:-]+.
func checkClaimName(name string) error {
	if name == "" {
		return errors.New("the claim name is empty")
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '_' || r == '.' || r == ':' || r == '-'
		if !ok {
			return fmt.Errorf("%q may not appear in a claim name (letters, digits and _ . : - only, no spaces)", r)
		}
	}
	return nil
}

// render fills the placeholders from claims. field names the entry in denials. A username
// that the claims turn into a system: one is refused: only the admin's literal text may
// reserve that prefix.
func (t *template) render(claims map[string]any, field string) (string, error) {
	if !t.dynamic {
		return t.text, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.claim == "" {
			b.WriteString(p.literal)
			continue
		}
		v, ok := claims[p.claim]
		if !ok || v == nil {
			return "", authn.Deny(authn.ReasonMapping, "%s %q: placeholder {{%s}}: the token has no %s claim", field, t.text, p.claim, p.claim)
		}
		s, ok := v.(string)
		if !ok {
			return "", authn.Deny(authn.ReasonMapping, "%s %q: placeholder {{%s}}: the token's %s claim is %s, not a string", field, t.text, p.claim, p.claim, jsonKind(v))
		}
		if s == "" {
			return "", authn.Deny(authn.ReasonMapping, "%s %q: placeholder {{%s}}: the token's %s claim is empty", field, t.text, p.claim, p.claim)
		}
		b.WriteString(s)
	}
	name := b.String()
	if strings.HasPrefix(name, reservedPrefix) && !strings.HasPrefix(t.prefix, reservedPrefix) {
		return "", authn.Deny(authn.ReasonReservedUsername, "%s %q renders %q: the reserved prefix %s comes from the token's own claims, not from the mapping's text", field, t.text, name, reservedPrefix)
	}
	return name, nil
}

// jsonKind names the JSON type of a decoded value, for messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, int, int64, uint64, float32, int32:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("a %T", v)
	}
}
