package mapping

import (
	"fmt"
	"strings"
)

// The ConfigMap data keys a mapping is read from.
const (
	// KeyUsers holds a YAML list of UserEntry.
	KeyUsers = "mapUsers"
	// KeyGroups holds a YAML list of GroupEntry.
	KeyGroups = "mapGroups"
)

// UserEntry is one element of mapUsers: it maps one identity, named by its subject or its
// email, to a username, extra groups, or both.
type UserEntry struct {
	// Issuer restricts the entry to one configured issuer; "" matches every configured issuer.
	Issuer string `json:"issuer,omitempty"`
	// Subject matches the token's sub claim. Exactly one of Subject and Email is set.
	Subject string `json:"subject,omitempty"`
	// Email matches the token's email claim, only when email_verified is not false.
	Email string `json:"email,omitempty"`
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
	// Group is a raw value of the token's groups claim, before any prefix.
	Group string `json:"group"`
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
}

// identityKey indexes an entry by its issuer ("" for every issuer) and matched value.
type identityKey struct{ issuer, value string }

// Match says which entries matched a token, for logs and `oidc-authenticator verify`.
type Match struct {
	// User is the index of the matching Users entry, -1 when none matched.
	User int
	// Groups are the indexes of the matching Groups entries, in file order.
	Groups []int
}

// Matched reports whether any entry matched.
func (m Match) Matched() bool { return m.User >= 0 || len(m.Groups) > 0 }

// Empty reports whether the mapping has no entries.
func (m *Mapping) Empty() bool { return m == nil || len(m.Users) == 0 && len(m.Groups) == 0 }

// DescribeMatch names the entries of m that match reports, e.g.
// `mapUsers[0] (email "alice@example.com"), mapGroups[1] (group "developers")`.
func (m *Mapping) DescribeMatch(match Match) string {
	var parts []string
	if match.User >= 0 {
		e := m.Users[match.User]
		by, v := "subject", e.Subject
		if v == "" {
			by, v = "email", e.Email
		}
		parts = append(parts, fmt.Sprintf("%s[%d] (%s %q)", KeyUsers, match.User, by, v))
	}
	for _, i := range match.Groups {
		parts = append(parts, fmt.Sprintf("%s[%d] (group %q)", KeyGroups, i, m.Groups[i].Group))
	}
	if len(parts) == 0 {
		return "no entry matches"
	}
	return strings.Join(parts, ", ") + " matched"
}
