package expression

import "github.com/google/cel-go/common/ast"

// Equality is a test of one top-level claim against a string constant that a condition
// requires to be true: the condition can only be true for tokens that pass it. The identity
// mapping indexes its expression entries by it, so that a token evaluates only the entries
// whose constant its claim holds.
//
// The test is decided without CEL only when the claim is a string (In: a list); for any
// other value, and for an absent claim without Default, the condition must be evaluated.
type Equality struct {
	// Claim is the claim's name, escapes undone (claims.org__dot__team reads "org.team").
	Claim string
	// Value is the constant the claim is compared with.
	Value string
	// In says the claim is a list the constant must be an element of ('z' in claims.groups);
	// otherwise the claim must equal the constant (claims.hd == 'example.com').
	In bool
	// HasDefault says the claim is read as an optional with a default: an absent claim reads
	// as Default (claims.?hd.orValue('') == 'example.com'); for In, the default is the empty
	// list, which holds nothing.
	HasDefault bool
	Default    string
}

// Equality returns the equality the condition requires, when it is one of these shapes or a
// conjunction (&&) with one of them on either side, the leftmost found:
//
//	claims.NAME == 'v'            'v' == claims.NAME
//	claims['NAME'] == 'v'         claims.?NAME.orValue('d') == 'v'
//	'v' in claims.NAME            'v' in claims.?NAME.orValue([])
//
// In a conjunction, a false equality makes the whole condition false without an error
// whatever the other side gives (CEL's && is commutative over errors), so a token whose claim
// is a string other than the constant can skip the condition.
func (p *Program) Equality() (Equality, bool) {
	if p.result != Bool {
		return Equality{}, false
	}
	return equality(p.ast.Expr())
}

func equality(e ast.Expr) (Equality, bool) {
	if e.Kind() != ast.CallKind {
		return Equality{}, false
	}
	c := e.AsCall()
	args := c.Args()
	if c.IsMemberFunction() || len(args) != 2 {
		return Equality{}, false
	}
	switch c.FunctionName() {
	case "_&&_":
		if eq, ok := equality(args[0]); ok {
			return eq, true
		}
		return equality(args[1])
	case "_==_":
		for _, side := range [][2]ast.Expr{{args[0], args[1]}, {args[1], args[0]}} {
			v, ok := literalString(side[1])
			if !ok {
				continue
			}
			if eq, ok := claimRead(side[0], false); ok {
				eq.Value = v
				return eq, true
			}
		}
	case "@in":
		v, ok := literalString(args[0])
		if !ok {
			return Equality{}, false
		}
		if eq, ok := claimRead(args[1], true); ok {
			eq.Value, eq.In = v, true
			return eq, true
		}
	}
	return Equality{}, false
}

// claimRead recognises a read of one top-level claim: claims.NAME, claims['NAME'], or
// claims.?NAME.orValue(default) with a string default (list: an empty list literal).
func claimRead(e ast.Expr, list bool) (Equality, bool) {
	switch e.Kind() {
	case ast.SelectKind:
		s := e.AsSelect()
		if s.IsTestOnly() || !isIdent(s.Operand(), ClaimsVar) {
			return Equality{}, false
		}
		return named(s.FieldName())
	case ast.CallKind:
	default:
		return Equality{}, false
	}
	c := e.AsCall()
	args := c.Args()
	if c.FunctionName() == "_[_]" && !c.IsMemberFunction() && len(args) == 2 && isIdent(args[0], ClaimsVar) {
		if k, ok := literalString(args[1]); ok {
			return named(k)
		}
		return Equality{}, false
	}
	if c.FunctionName() != "orValue" || !c.IsMemberFunction() || len(args) != 1 {
		return Equality{}, false
	}
	t := c.Target()
	if t.Kind() != ast.CallKind {
		return Equality{}, false
	}
	opt := t.AsCall()
	optArgs := opt.Args()
	if opt.FunctionName() != "_?._" || opt.IsMemberFunction() || len(optArgs) != 2 || !isIdent(optArgs[0], ClaimsVar) {
		return Equality{}, false
	}
	k, ok := literalString(optArgs[1])
	if !ok {
		return Equality{}, false
	}
	eq, ok := named(k)
	if !ok {
		return Equality{}, false
	}
	if list {
		if args[0].Kind() != ast.ListKind || len(args[0].AsList().Elements()) != 0 {
			return Equality{}, false
		}
		eq.HasDefault = true
		return eq, true
	}
	d, ok := literalString(args[0])
	if !ok {
		return Equality{}, false
	}
	eq.HasDefault, eq.Default = true, d
	return eq, true
}

// named is a read of the claim a key names, as the claims variable resolves it.
func named(key string) (Equality, bool) {
	name, ok := unescape(key)
	if !ok {
		return Equality{}, false // reads nothing: left to CEL
	}
	return Equality{Claim: name}, true
}
