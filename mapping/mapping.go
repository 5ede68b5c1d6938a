package mapping

import (
	"fmt"
	"strings"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/expression"
)

// The ConfigMap data keys a mapping is read from.
const (
	// KeyUsers holds a YAML list of UserEntry.
	KeyUsers = "mapUsers"
	// KeyGroups holds a YAML list of GroupEntry.
	KeyGroups = "mapGroups"
)

// UserEntry is one element of mapUsers: it maps one identity, named by its subject or its
// email, or the tokens an expression accepts, to a username, extra groups, or both.
type UserEntry struct {
	// Issuer restricts the entry to one configured issuer; "" matches every configured issuer.
	Issuer string `json:"issuer,omitempty"`
	// Subject matches the token's sub claim. Exactly one of Subject, Email and Expression is
	// set.
	Subject string `json:"subject,omitempty"`
	// Email matches the token's email claim, only when email_verified is not false.
	Email string `json:"email,omitempty"`
	// Expression is a CEL condition over claims; it matches the tokens it is true for.
	// Entries by subject or email win over entries by expression, and of these the first
	// that is true wins.
	Expression string `json:"expression,omitempty"`
	// Username replaces the claim-derived username. It may hold {{claim}} placeholders of
	// top-level string claims. At least one of Username and Groups is set.
	Username string `json:"username,omitempty"`
	// Groups are Kubernetes groups added to the claim-derived ones.
	Groups []string `json:"groups,omitempty"`
}

// GroupEntry is one element of mapGroups: it adds Kubernetes groups to every token whose
// groups claim holds Group.
type GroupEntry struct {
	// Issuer restricts the entry to one configured issuer; "" matches every configured issuer.
	Issuer string `json:"issuer,omitempty"`
	// Group is a raw value of the token's groups claim, before any prefix. Exactly one of
	// Group and Expression is set.
	Group string `json:"group,omitempty"`
	// Expression is a CEL condition over claims; the entry adds its groups to every token it
	// is true for.
	Expression string `json:"expression,omitempty"`
	// Groups are the Kubernetes groups added; never empty.
	Groups []string `json:"groups"`
}

// Mapping is a validated mapping. Build it with Parse or ParseManifest; it is immutable once
// built, and neither it nor its slices may be modified. A Mapping built otherwise (a struct
// literal) has no indexes and matches nothing. A nil *Mapping is an empty mapping.
type Mapping struct {
	Users  []UserEntry
	Groups []GroupEntry

	// usernames holds the compiled Username of each Users entry (nil when it sets none).
	usernames []*template
	// bySubject and byEmail find the Users entry for an (issuer, value) pair; issuer "" is
	// an entry that applies to every issuer. Validation guarantees at most one entry per
	// value for any issuer.
	bySubject map[identityKey]int
	byEmail   map[identityKey]int
	// byGroup lists, in file order, the Groups entries for a raw group value.
	byGroup map[string][]int
	// userExpressions and groupExpressions hold, in file order, the entries matched by
	// expression, with their compiled conditions, indexed by the claim equality they require
	// when they require one.
	userExpressions  exprIndex
	groupExpressions exprIndex

	// parts says where each ConfigMap's entries start, for a mapping of several (ParseSet);
	// nil for a mapping of one.
	parts []partStart
}

// partStart is where the entries of one ConfigMap start in Users and Groups.
type partStart struct {
	name          string
	users, groups int
}

// Locate returns the ConfigMap (namespace/name; "" for a mapping of one) and the index within it of the
// entry at index i of Users (key mapUsers) or Groups (key mapGroups).
func (m *Mapping) Locate(key string, i int) (configMap string, index int) {
	if m == nil {
		return "", i
	}
	for j := len(m.parts) - 1; j >= 0; j-- {
		start := m.parts[j].users
		if key == KeyGroups {
			start = m.parts[j].groups
		}
		if i >= start {
			return m.parts[j].name, i - start
		}
	}
	return "", i
}

// entryPath names the entry at index i of the list key: "mapUsers[3]", or "mapUsers[3] of
// ConfigMap kube-system/oidc-auth-2" in a mapping of several.
func (m *Mapping) entryPath(key string, i int) string {
	part, local := m.Locate(key, i)
	if part == "" {
		return fmt.Sprintf("%s[%d]", key, local)
	}
	return fmt.Sprintf("%s[%d] of ConfigMap %s", key, local, part)
}

// matcher is an entry matched by a CEL condition over claims.
type matcher struct {
	entry int
	cond  *expression.Program
}

// identityKey indexes an entry by its issuer ("" for every issuer) and matched value.
type identityKey struct{ issuer, value string }

// Match says which entries matched a token, for logs and `oidc-authenticator verify`.
type Match struct {
	// User is the index of the matching Users entry, -1 when none matched.
	User int
	// Groups are the indexes of the matching Groups entries, in file order.
	Groups []int
	// Errors are the entries whose expression could not be evaluated for the token, e.g.
	// "mapGroups[2].expression: expression 'claims.hd == ...' resulted in error: no such key:
	// hd". Such an entry does not match.
	Errors []string

	// evaluated counts the expressions evaluated for the match, for tests.
	evaluated int
}

// Matched reports whether any entry matched.
func (m Match) Matched() bool { return m.User >= 0 || len(m.Groups) > 0 }

// Empty reports whether the mapping has no entries.
func (m *Mapping) Empty() bool { return m == nil || len(m.Users) == 0 && len(m.Groups) == 0 }

// matchedBy says what the entry matches tokens by: subject, email or expression, and its value.
func (e UserEntry) matchedBy() (by, value string) {
	switch {
	case e.Email != "":
		return "email", e.Email
	case e.Expression != "":
		return "expression", e.Expression
	}
	return "subject", e.Subject
}

// matchedBy says what the entry matches tokens by: group or expression, and its value.
func (e GroupEntry) matchedBy() (by, value string) {
	if e.Expression != "" {
		return "expression", e.Expression
	}
	return "group", e.Group
}

// DescribeMatch names the entries of m that match reports, e.g.
// `mapUsers[0] (email "alice@example.com"), mapGroups[1] (group "developers")`.
func (m *Mapping) DescribeMatch(match Match) string {
	var parts []string
	if match.User >= 0 {
		by, v := m.Users[match.User].matchedBy()
		parts = append(parts, fmt.Sprintf("%s (%s %q)", m.entryPath(KeyUsers, match.User), by, v))
	}
	for _, i := range match.Groups {
		by, v := m.Groups[i].matchedBy()
		parts = append(parts, fmt.Sprintf("%s (%s %q)", m.entryPath(KeyGroups, i), by, v))
	}
	desc := "no entry matches"
	if len(parts) > 0 {
		desc = strings.Join(parts, ", ") + " matched"
	}
	if len(match.Errors) > 0 {
		desc += "; not matched because their expression failed: " + strings.Join(match.Errors, "; ")
	}
	return desc
}
