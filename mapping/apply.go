package mapping

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/expression"
)

// Apply maps a verified identity to the Kubernetes user.
//
// It starts from id.User, the user the issuer's claim mappings give, which it never modifies
// (the returned user shares only its Extra map, which callers must not modify either). The
// mapUsers entry matching the token replaces the username, when it sets one, and adds its
// groups; every matching mapGroups entry adds its groups. Groups come in this order: the
// claim groups, the mapUsers entry's, then each mapGroups entry's in file order; of
// duplicates, the first is kept.
//
// A mapUsers entry matches when its issuer is empty or the token's, and its subject is the
// token's sub, or its email the token's email with email_verified not false, or its
// expression is true for the token's claims. An entry by subject wins over one by email, and
// both over entries by expression, of which the first true in file order wins. A mapGroups
// entry matches when its group is one of the token's raw groups values, or its expression is
// true. An expression that cannot be evaluated (a claim the token lacks, a cost limit) does
// not match; match.Errors says why.
//
// Errors are *authn.Denial values: ReasonNoMapping when requireMatch is set and nothing
// matched, ReasonMapping when a username placeholder has no string claim to fill it, and
// ReasonReservedUsername when the token's claims would make the username start with system:.
func (m *Mapping) Apply(ctx context.Context, id *authn.Identity, requireMatch bool) (authn.User, Match, error) {
	var cel *conditions // only a mapping with expression entries converts the claims
	if m.hasExpressions() {
		claims, err := id.Claims()
		if err != nil {
			return authn.User{}, Match{User: -1}, authn.Undecided(authn.ReasonInternal, err)
		}
		cel = &conditions{m: m, claims: claims, vars: expression.ClaimsVars(claims), budget: expression.NewBudget()}
	}
	match := Match{User: m.matchUser(ctx, id, cel), Groups: m.matchGroups(ctx, id, cel)}
	if cel != nil {
		match.Errors = cel.errors
		match.evaluated = cel.evaluated
	}
	if requireMatch && !match.Matched() {
		return authn.User{}, match, authn.Deny(authn.ReasonNoMapping,
			"mapping.requireMatch is set and no entry of the identity mapping matches %s%s", describe(id), m.nearMisses(id))
	}
	u := authn.User{Name: id.User.Name, UID: id.User.UID, Extra: id.User.Extra}
	var entry *UserEntry
	if match.User >= 0 {
		entry = &m.Users[match.User]
		if t := m.usernames[match.User]; t != nil {
			claims, err := id.Claims()
			if err != nil {
				return authn.User{}, match, authn.Undecided(authn.ReasonInternal, err)
			}
			name, err := t.render(claims, m.entryPath(KeyUsers, match.User)+".username")
			if err != nil {
				return authn.User{}, match, err
			}
			u.Name = name
		}
	}
	u.Groups = m.groups(id.User.Groups, entry, match.Groups)
	return u, match, nil
}

// matchUser returns the index of the mapUsers entry for the token, or -1.
func (m *Mapping) matchUser(ctx context.Context, id *authn.Identity, cel *conditions) int {
	if m == nil {
		return -1
	}
	for _, issuer := range []string{id.Issuer, ""} {
		if i, ok := m.bySubject[identityKey{issuer, id.Subject}]; ok {
			return i
		}
	}
	if id.EmailUsable() {
		for _, issuer := range []string{id.Issuer, ""} {
			if i, ok := m.byEmail[identityKey{issuer, id.Email}]; ok {
				return i
			}
		}
	}
	if m.userExpressions.len() == 0 {
		return -1
	}
	for _, pos := range m.userExpressions.candidates(cel.claims) {
		x := m.userExpressions.all[pos]
		if iss := m.Users[x.entry].Issuer; (iss == "" || iss == id.Issuer) && cel.holds(ctx, KeyUsers, x) {
			return x.entry
		}
	}
	return -1
}

// matchGroups returns the indexes of the mapGroups entries for the token, in file order.
func (m *Mapping) matchGroups(ctx context.Context, id *authn.Identity, cel *conditions) []int {
	if m == nil || len(m.byGroup) == 0 && m.groupExpressions.len() == 0 {
		return nil
	}
	var out []int
	for _, g := range id.Groups {
		for _, i := range m.byGroup[g] {
			if iss := m.Groups[i].Issuer; iss == "" || iss == id.Issuer {
				out = append(out, i)
			}
		}
	}
	if m.groupExpressions.len() > 0 {
		for _, pos := range m.groupExpressions.candidates(cel.claims) {
			x := m.groupExpressions.all[pos]
			if iss := m.Groups[x.entry].Issuer; (iss == "" || iss == id.Issuer) && cel.holds(ctx, KeyGroups, x) {
				out = append(out, x.entry)
			}
		}
	}
	// A token naming a group twice matches its entries once: sorting, then dropping repeats,
	// costs n log n where a search before each append cost n².
	slices.Sort(out)
	return slices.Compact(out)
}

// conditions evaluates the entries' expressions for one token: one claims variable and one
// cost budget for all of them.
type conditions struct {
	m      *Mapping
	claims map[string]any
	vars   *expression.Vars
	budget expression.Budget
	// errors are the entries whose expression failed, for Match.Errors.
	errors []string
	// evaluated counts the expressions evaluated, for the tests that keep it low.
	evaluated int
}

// hasExpressions reports whether any entry is matched by expression.
func (m *Mapping) hasExpressions() bool {
	return m != nil && (m.userExpressions.len() > 0 || m.groupExpressions.len() > 0)
}

// holds reports whether the entry's condition is true; an evaluation error counts as false
// and is noted.
func (c *conditions) holds(ctx context.Context, list string, x matcher) bool {
	c.evaluated++
	ok, err := x.cond.Bool(ctx, c.vars, &c.budget)
	if err != nil {
		c.errors = append(c.errors, fmt.Sprintf("%s.expression: %v", c.m.entryPath(list, x.entry), err))
		return false
	}
	return ok
}

// groups builds the user's groups in a new slice, keeping the first of duplicates.
func (m *Mapping) groups(claimGroups []string, entry *UserEntry, groupEntries []int) []string {
	n := len(claimGroups)
	if entry != nil {
		n += len(entry.Groups)
	}
	for _, i := range groupEntries {
		n += len(m.Groups[i].Groups)
	}
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	// Short lists are searched; long ones get a set.
	var seen map[string]bool
	if n > 16 {
		seen = make(map[string]bool, n)
	}
	add := func(gs []string) {
		for _, g := range gs {
			if seen != nil {
				if seen[g] {
					continue
				}
				seen[g] = true
			} else if slices.Contains(out, g) {
				continue
			}
			out = append(out, g)
		}
	}
	add(claimGroups)
	if entry != nil {
		add(entry.Groups)
	}
	for _, i := range groupEntries {
		add(m.Groups[i].Groups)
	}
	return out
}

// describe names what the mapping matches on, for a denial.
func describe(id *authn.Identity) string {
	var b strings.Builder
	fmt.Fprintf(&b, "issuer %q, subject %q", id.Issuer, id.Subject)
	switch {
	case id.Email == "":
		b.WriteString(", no email")
	case id.EmailUsable():
		fmt.Fprintf(&b, ", email %q", id.Email)
	default:
		fmt.Fprintf(&b, ", email %q (not used: email_verified is false)", id.Email)
	}
	fmt.Fprintf(&b, ", groups claim %q", id.Groups)
	return b.String()
}

// nearMisses points at entries that would have matched but for their issuer or an
// unverified email, so that a denial says what to fix.
func (m *Mapping) nearMisses(id *authn.Identity) string {
	if m == nil {
		return ""
	}
	var notes []string
	for i, e := range m.Users {
		path := m.entryPath(KeyUsers, i)
		switch {
		case e.Subject != "" && e.Subject == id.Subject:
			notes = append(notes, fmt.Sprintf("%s maps this subject for issuer %s only", path, e.Issuer))
		case e.Email != "" && e.Email == id.Email && !id.EmailUsable():
			notes = append(notes, fmt.Sprintf("%s maps this email, but the token says email_verified is false", path))
		case e.Email != "" && e.Email == id.Email:
			notes = append(notes, fmt.Sprintf("%s maps this email for issuer %s only", path, e.Issuer))
		}
	}
	for i, e := range m.Groups {
		if e.Group != "" && slices.Contains(id.Groups, e.Group) {
			notes = append(notes, fmt.Sprintf("%s maps group %q for issuer %s only", m.entryPath(KeyGroups, i), e.Group, e.Issuer))
		}
	}
	if len(notes) == 0 {
		return ""
	}
	return "; note: " + strings.Join(notes, "; ")
}
