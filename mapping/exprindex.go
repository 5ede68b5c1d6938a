package mapping

import (
	"slices"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/expression"
)

// exprIndex holds the expression entries of one list (mapUsers or mapGroups) and finds those
// that may be true for a token, so that a token evaluates those only. An entry whose
// condition requires an equality of one claim with a constant (expression.Equality) is
// indexed by that constant: a token whose claim is a string (or a list of strings) other
// than the constant cannot make it true, and evaluating it could give neither true nor an
// error. Every other entry is evaluated for every token, as are the indexed ones whenever the
// token's claim is absent (without a default) or of another type, so that the entries that
// match, and the errors reported, are those of evaluating every entry.
type exprIndex struct {
	// all are the list's expression entries, in file order.
	all []matcher
	// rest are the positions in all of the entries not indexed.
	rest []int
	// lookups index the other entries, one per claim test (claim, In, default).
	lookups []*lookup
}

// lookup indexes the entries whose conditions require the same test of the same claim.
type lookup struct {
	eq expression.Equality // Value unset: each entry has its own
	// byValue lists, by constant, the positions in all of the entries comparing with it.
	byValue map[string][]int
	// every lists the positions of all of them, in order.
	every []int
}

// add appends m, indexing it when its condition allows.
func (ix *exprIndex) add(m matcher) {
	pos := len(ix.all)
	ix.all = append(ix.all, m)
	eq, ok := m.cond.Equality()
	if !ok {
		ix.rest = append(ix.rest, pos)
		return
	}
	value := eq.Value
	eq.Value = ""
	var l *lookup
	for _, c := range ix.lookups {
		if c.eq == eq {
			l = c
			break
		}
	}
	if l == nil {
		l = &lookup{eq: eq, byValue: map[string][]int{}}
		ix.lookups = append(ix.lookups, l)
	}
	l.byValue[value] = append(l.byValue[value], pos)
	l.every = append(l.every, pos)
}

// len is the number of entries.
func (ix *exprIndex) len() int { return len(ix.all) }

// candidates returns the positions in all of the entries that may be true for claims, in
// file order.
func (ix *exprIndex) candidates(claims map[string]any) []int {
	if len(ix.lookups) == 0 {
		return ix.rest // shared: callers only read it
	}
	out := slices.Clone(ix.rest)
	for _, l := range ix.lookups {
		out = l.add(out, claims)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// add appends the positions of the entries of l that claims may make true.
func (l *lookup) add(out []int, claims map[string]any) []int {
	v, present := claims[l.eq.Claim]
	switch {
	case !present && l.eq.HasDefault && l.eq.In:
		return out // the default, an empty list, holds no constant
	case !present && l.eq.HasDefault:
		return append(out, l.byValue[l.eq.Default]...)
	case !present:
		return append(out, l.every...) // each entry errors or not as CEL decides
	}
	if !l.eq.In {
		s, ok := v.(string)
		if !ok {
			return append(out, l.every...)
		}
		return append(out, l.byValue[s]...)
	}
	list, ok := v.([]any)
	if !ok {
		return append(out, l.every...)
	}
	for _, el := range list {
		if s, ok := el.(string); ok {
			out = append(out, l.byValue[s]...)
		}
	}
	return out
}
