package mapping

import (
	"fmt"
	"slices"
	"strings"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/expression"
)

// The fields of each kind of entry, in the order problems are reported.
var (
	userFields  = []string{"issuer", "subject", "email", "expression", "username", "groups"}
	groupFields = []string{"issuer", "group", "expression", "groups"}
)

// userEntry validates one element of mapUsers and, when it is valid, adds it to m.
func (p *parser) userEntry(m *Mapping, i int, e rawEntry) {
	path := fmt.Sprintf("%s[%d]", KeyUsers, i)
	if !p.checkShape(path, e, userFields, KeyUsers, groupFields, KeyGroups) {
		return
	}
	issuer := p.issuer(path, e)
	subject := p.identityString(path, e, "subject")
	email := p.identityString(path, e, "email")
	if email.ok && !strings.Contains(email.val, "@") {
		p.problems.add(path+".email", "%q is not an email address", email.val)
		email.ok = false
	}
	cond := p.condition(path, e)
	username := p.str(path, e, "username")
	var tpl *template
	if username.ok {
		t, err := compileTemplate(username.val)
		if err != nil {
			p.problems.add(path+".username", "%s", err)
			username.ok = false
		}
		tpl = t
	}
	groups := p.groupList(path, e, "groups")
	switch {
	case subject.set && email.set:
		p.problems.add(path+".email", "must not be set together with subject; an entry matches by subject, by email or by expression, so write two entries")
	case cond.set && (subject.set || email.set):
		p.problems.add(path+".expression", "must not be set together with subject or email; an entry matches by subject, by email or by expression, so write two entries")
	case !subject.set && !email.set && !cond.set:
		p.problems.add(path+".subject", "required: set subject, email or expression to say whom the entry maps")
	}
	if !username.set && !groups.set {
		p.problems.add(path+".username", "required: set username, groups or both, or the entry changes nothing")
	}
	if !issuer.ok {
		return
	}
	if subject.ok {
		p.claim(path+".subject", "subject", subject.val, issuer.val)
	}
	if email.ok {
		p.claim(path+".email", "email", email.val, issuer.val)
	}
	if cond.ok {
		p.claimIn(KeyUsers, path+".expression", "expression", cond.val.Text(), issuer.val)
	}
	if len(p.problems) > 0 {
		return // the mapping will not be used; skip building it
	}
	idx := len(m.Users)
	switch {
	case subject.ok:
		m.bySubject[identityKey{issuer.val, subject.val}] = idx
	case email.ok:
		m.byEmail[identityKey{issuer.val, email.val}] = idx
	default:
		m.userExpressions.add(matcher{entry: idx, cond: cond.val})
	}
	var text string
	if cond.ok {
		text = cond.val.Text()
	}
	m.Users = append(m.Users, UserEntry{
		Issuer: issuer.val, Subject: subject.val, Email: email.val, Expression: text,
		Username: username.val, Groups: groups.val,
	})
	m.usernames = append(m.usernames, tpl)
}

// groupEntry validates one element of mapGroups and, when it is valid, adds it to m.
func (p *parser) groupEntry(m *Mapping, i int, e rawEntry) {
	path := fmt.Sprintf("%s[%d]", KeyGroups, i)
	if !p.checkShape(path, e, groupFields, KeyGroups, userFields, KeyUsers) {
		return
	}
	issuer := p.issuer(path, e)
	group := p.identityString(path, e, "group")
	cond := p.condition(path, e)
	switch {
	case group.set && cond.set:
		p.problems.add(path+".expression", "must not be set together with group; an entry matches by group or by expression, so write two entries")
	case !group.set && !cond.set:
		p.problems.add(path+".group", "required: the value of the token's groups claim this entry matches, or an expression")
	}
	groups := p.groupList(path, e, "groups")
	if !groups.set {
		p.problems.add(path+".groups", "required: the Kubernetes groups to add")
	}
	if !issuer.ok || !group.ok && !cond.ok {
		return
	}
	if group.ok {
		p.claim(path+".group", "group", group.val, issuer.val)
	} else {
		p.claimIn(KeyGroups, path+".expression", "expression", cond.val.Text(), issuer.val)
	}
	if len(p.problems) > 0 {
		return
	}
	idx := len(m.Groups)
	entry := GroupEntry{Issuer: issuer.val, Group: group.val, Groups: groups.val}
	if group.ok {
		m.byGroup[group.val] = append(m.byGroup[group.val], idx)
	} else {
		entry.Expression = cond.val.Text()
		m.groupExpressions.add(matcher{entry: idx, cond: cond.val})
	}
	m.Groups = append(m.Groups, entry)
}

// condition reads and compiles the expression field: a CEL condition over claims. As in the
// issuers' claimMappings, one that reads claims.email must also read claims.email_verified,
// so that an unverified email never matches.
func (p *parser) condition(path string, e rawEntry) value[*expression.Program] {
	text := p.str(path, e, "expression")
	v := value[*expression.Program]{set: text.set}
	if !text.ok {
		return v
	}
	field := path + ".expression"
	if p.compiler == nil && p.compilerErr == nil {
		p.compiler, p.compilerErr = expression.NewCompiler()
	}
	if p.compilerErr != nil {
		p.problems.add(field, "%s", p.compilerErr)
		return v
	}
	prog, err := p.compiler.CompileClaims(field, text.val, expression.Bool)
	if err != nil {
		p.problems.add(field, "%q: %s", text.val, err)
		return v
	}
	if prog.Reads(expression.ClaimsVar, "email") && !prog.Names(expression.ClaimsVar, "email_verified") {
		p.problems.add(field, "%q reads claims.email but not claims.email_verified (reading claims by index or as a whole counts as reading email); check it too, e.g. claims.?email_verified.orValue(true) == true && claims.email.endsWith('@example.com')", text.val)
		return v
	}
	v.val, v.ok = prog, true
	return v
}

// checkShape reports an element that is not a mapping, fields set twice, and unknown fields.
// It returns false when the element cannot be checked further.
func (p *parser) checkShape(path string, e rawEntry, known []string, list string, other []string, otherList string) bool {
	if e.fields == nil {
		if strings.HasPrefix(e.kind, "nothing") {
			p.problems.add(path, "is an empty entry")
		} else {
			p.problems.add(path, "must be a mapping with the fields %s; got %s", strings.Join(known, ", "), e.kind)
		}
		return false
	}
	for _, f := range e.repeated {
		p.problems.add(path+"."+f, "is set more than once in this entry")
	}
	var unknown []string
	for _, f := range e.fields {
		if !slices.Contains(known, f.name) {
			unknown = append(unknown, f.name)
		}
	}
	slices.Sort(unknown)
	for _, f := range unknown {
		p.problems.add(path+"."+f, "%s", unknownField(f, known, list, other, otherList))
	}
	return true
}

// unknownField explains a field that is not part of an entry.
func unknownField(f string, known []string, list string, other []string, otherList string) string {
	for _, k := range known {
		if strings.EqualFold(f, k) {
			return fmt.Sprintf("unknown field; did you mean %s? Field names are case-sensitive", k)
		}
	}
	if slices.Contains(other, f) {
		return fmt.Sprintf("unknown field in a %s entry (%s is a field of %s entries)", list, f, otherList)
	}
	return fmt.Sprintf("unknown field; a %s entry has the fields %s", list, strings.Join(known, ", "))
}

// value is a field as read: set when present in the entry, ok when also valid.
type value[T any] struct {
	val     T
	set, ok bool
}

// emptyHints says what to do instead of writing an empty value.
var emptyHints = map[string]string{
	"issuer":   "; omit issuer to match every configured issuer",
	"username": "; omit username to keep the username the token's claims give",
}

// str reads a string field that, when present, must be a non-empty string.
func (p *parser) str(path string, e rawEntry, name string) value[string] {
	raw, present := e.field(name)
	if !present {
		return value[string]{}
	}
	v := value[string]{set: true}
	if slices.Contains(e.repeated, name) {
		return v // reported by checkShape; which value is meant is unknown
	}
	field := path + "." + name
	if kind := raw.kind; kind != "a string" {
		if strings.HasPrefix(kind, "nothing") {
			p.problems.add(field, "must not be empty%s", emptyHints[name])
		} else {
			p.problems.add(field, "must be a string; got %s%s", kind, quoteHint(kind))
		}
		return v
	}
	if raw.err != nil {
		p.problems.add(field, "cannot be read: %s", raw.err)
		return v
	}
	v.val = raw.text
	if v.val == "" {
		p.problems.add(field, "must not be empty%s", emptyHints[name])
		return v
	}
	v.ok = true
	return v
}

// quoteHint tells how to write a value YAML would otherwise read as a number or boolean.
func quoteHint(kind string) string {
	switch kind {
	case "a number":
		return " (put the value in quotes: YAML reads unquoted digits as a number, and long ones lose digits)"
	case "a boolean":
		return " (put the value in quotes: YAML reads unquoted true, false, yes, no, on, off, y and n as booleans)"
	}
	return ""
}

// identityString reads a field that is matched against a token: surrounding spaces would
// make it never match, so they are refused.
func (p *parser) identityString(path string, e rawEntry, name string) value[string] {
	v := p.str(path, e, name)
	if v.ok && strings.TrimSpace(v.val) != v.val {
		p.problems.add(path+"."+name, "%q has leading or trailing spaces, so it would never match a token", v.val)
		v.ok = false
	}
	return v
}

// issuer reads the optional issuer field, which must name a configured issuer.
func (p *parser) issuer(path string, e rawEntry) value[string] {
	v := p.identityString(path, e, "issuer")
	if !v.set {
		v.ok = true // every configured issuer
		return v
	}
	if v.ok && !p.anyIssuer && !slices.Contains(p.issuers, v.val) {
		if len(p.issuers) == 0 {
			p.problems.add(path+".issuer", "%q is not a configured issuer (no issuers are configured)", v.val)
		} else {
			p.problems.add(path+".issuer", "%q is not a configured issuer (configured: %s)", v.val, strings.Join(p.issuers, ", "))
		}
		v.ok = false
	}
	return v
}

// groupList reads a list of Kubernetes group names: a non-empty list of non-empty strings.
func (p *parser) groupList(path string, e rawEntry, name string) value[[]string] {
	raw, present := e.field(name)
	if !present {
		return value[[]string]{}
	}
	v := value[[]string]{set: true}
	if slices.Contains(e.repeated, name) {
		return v
	}
	field := path + "." + name
	switch kind := raw.kind; kind {
	case "a list":
	case "a string":
		p.problems.add(field, "must be a list of strings, not a single string; write %s: [%s]", name, raw.text)
		return v
	default:
		p.problems.add(field, "must be a list of strings; got %s", kind)
		return v
	}
	if raw.err != nil {
		p.problems.add(field, "cannot be read: %s", raw.err)
		return v
	}
	items := raw.items
	if len(items) == 0 {
		p.problems.add(field, "must list at least one group; omit %s if the entry adds none", name)
		return v
	}
	ok := true
	for j, item := range items {
		itemField := fmt.Sprintf("%s[%d]", field, j)
		s := item.text
		switch kind := item.kind; {
		case kind != "a string":
			p.problems.add(itemField, "must be a string; got %s%s", kind, quoteHint(kind))
			ok = false
		case item.err != nil:
			p.problems.add(itemField, "cannot be read")
			ok = false
		case s == "":
			p.problems.add(itemField, "must not be empty")
			ok = false
		default:
			v.val = append(v.val, s)
		}
	}
	v.ok = ok
	if !ok {
		v.val = nil
	}
	return v
}

// claim records that the entry at field maps value (a subject, email or group) for issuer,
// and reports an earlier entry for the same identity. An entry without issuer applies to
// every issuer, so it overlaps every entry for the same value.
func (p *parser) claim(field, kind, value, issuer string) {
	p.claimIn(kind, field, kind, value, issuer)
}

// claimIn is claim with the values kept apart by bucket: the expressions of mapUsers and of
// mapGroups are compared only with their own list's.
func (p *parser) claimIn(bucket, field, kind, value, issuer string) {
	byValue := p.seen[bucket]
	if byValue == nil {
		byValue = map[string][]claimant{}
		p.seen[bucket] = byValue
	}
	for _, c := range byValue[value] {
		var why string
		switch {
		case c.issuer == issuer && issuer == "":
			why = "both have no issuer, so both apply to every issuer"
		case c.issuer == issuer:
			why = "both for issuer " + issuer
		case c.issuer == "":
			why = c.path + " has no issuer, so it applies to every issuer"
		case issuer == "":
			why = "this entry has no issuer, so it applies to every issuer, including " + c.issuer
		default:
			continue // different issuers: different identities
		}
		p.problems.add(field, "%s %q is already mapped by %s (%s); merge them into one entry", kind, value, c.path, why)
		return
	}
	path := strings.TrimSuffix(field, "."+kind)
	if p.part != "" {
		path += " of ConfigMap " + p.part
	}
	byValue[value] = append(byValue[value], claimant{issuer: issuer, path: path})
}
