package expression

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// Vars are the variables of one evaluation: the claims of one token, or one user. Build them
// once and evaluate every expression of a phase with them; they are read-only and safe for
// concurrent use.
type Vars struct {
	name  string
	value ref.Val
}

var _ interpreter.Activation = (*Vars)(nil)

// ResolveName implements interpreter.Activation.
func (v *Vars) ResolveName(name string) (any, bool) {
	if name != v.name {
		return nil, false
	}
	return v.value, true
}

// Parent implements interpreter.Activation.
func (v *Vars) Parent() interpreter.Activation { return nil }

// ClaimsVars makes a token's claims, as decoded from JSON (numbers are float64, so CEL sees
// doubles, as in kube-apiserver), the claims variable. Nothing is copied.
func ClaimsVars(claims map[string]any) *Vars {
	return &Vars{name: ClaimsVar, value: &claimsValue{claims: claims}}
}

// UserVars makes u the user variable: a map with the keys username, uid, groups and extra.
func UserVars(u authn.User) *Vars {
	groups, extra := u.Groups, u.Extra
	if groups == nil {
		groups = []string{}
	}
	if extra == nil {
		extra = map[string][]string{}
	}
	m := types.DefaultTypeAdapter.NativeToValue(map[string]any{
		"username": u.Name, "uid": u.UID, "groups": groups, "extra": extra,
	})
	return &Vars{name: UserVar, value: unescapeWrapper(m)}
}

// claimsValue is the claims variable: a map from claim name to value, as kube-apiserver
// builds it (its type is named kubernetes.claims; a field name written with the Kubernetes
// CEL escapes, claims.foo__dot__bar, reads the claim foo.bar). Nested objects and lists are
// converted when they are read.
//
// Unlike kube-apiserver's, whose iterator yields the claims' values, a comprehension over
// claims ranges over the claim names, as CEL's maps do.
type claimsValue struct {
	claims map[string]any
}

var (
	_ ref.Val       = (*claimsValue)(nil)
	_ traits.Mapper = (*claimsValue)(nil)

	claimsType = types.NewTypeValue("kubernetes.claims", traits.IndexerType|traits.FieldTesterType|traits.IterableType)
)

// name returns the claim a key reads: kube-apiserver unescapes every key at this level, and a
// key that is not a valid escape reads nothing.
func (c *claimsValue) name(key ref.Val) (string, bool) {
	s, ok := key.(types.String)
	if !ok {
		return "", false
	}
	return unescape(string(s))
}

func (c *claimsValue) Find(key ref.Val) (ref.Val, bool) {
	if _, ok := key.(types.String); !ok {
		return types.MaybeNoSuchOverloadErr(key), true
	}
	name, ok := c.name(key)
	if !ok {
		return nil, false
	}
	v, ok := c.claims[name]
	if !ok {
		return nil, false
	}
	return nativeToValue(v), true
}

func (c *claimsValue) Get(key ref.Val) ref.Val {
	if v, found := c.Find(key); found {
		return v
	}
	return types.ValOrErr(key, "no such key: %v", key)
}

func (c *claimsValue) Contains(key ref.Val) ref.Val {
	v, found := c.Find(key)
	if v != nil && types.IsUnknownOrError(v) {
		return v
	}
	return types.Bool(found)
}

func (c *claimsValue) Size() ref.Val { return types.Int(len(c.claims)) }

func (c *claimsValue) Iterator() traits.Iterator {
	names := make([]string, 0, len(c.claims))
	for k := range c.claims {
		names = append(names, k)
	}
	return &namesIterator{names: names}
}

func (c *claimsValue) ConvertToNative(t reflect.Type) (any, error) {
	return nil, fmt.Errorf("disallowed conversion from %q to %q", claimsType.TypeName(), t.Name())
}

func (c *claimsValue) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case claimsType:
		return c
	case types.TypeType:
		return claimsType
	}
	return types.NewErr("disallowed conversion from %q to %q", claimsType.TypeName(), t.TypeName())
}

func (c *claimsValue) Equal(other ref.Val) ref.Val {
	o, ok := other.(*claimsValue)
	if !ok {
		return types.MaybeNoSuchOverloadErr(other)
	}
	return types.Bool(c == o)
}

func (c *claimsValue) Type() ref.Type { return claimsType }

func (c *claimsValue) Value() any { return types.NoSuchOverloadErr() }

// namesIterator yields claim names.
type namesIterator struct {
	names []string
	next  int
}

func (i *namesIterator) HasNext() ref.Val { return types.Bool(i.next < len(i.names)) }

func (i *namesIterator) Next() ref.Val {
	n := i.names[i.next]
	i.next++
	return types.String(n)
}

func (i *namesIterator) ConvertToNative(t reflect.Type) (any, error) {
	return nil, fmt.Errorf("disallowed conversion to %q", t.Name())
}

func (i *namesIterator) ConvertToType(t ref.Type) ref.Val {
	return types.NewErr("disallowed conversion to %q", t.TypeName())
}

func (i *namesIterator) Equal(other ref.Val) ref.Val {
	o, ok := other.(*namesIterator)
	if !ok {
		return types.MaybeNoSuchOverloadErr(other)
	}
	return types.Bool(i == o)
}

func (i *namesIterator) Type() ref.Type { return types.IteratorType }

func (i *namesIterator) Value() any { return nil }

// nativeToValue converts a decoded JSON value, wrapping objects and lists so that their
// escaped field names are read as kube-apiserver reads them.
func nativeToValue(v any) ref.Val {
	return unescapeWrapper(types.DefaultTypeAdapter.NativeToValue(v))
}

func unescapeWrapper(v ref.Val) ref.Val {
	switch t := v.(type) {
	case traits.Mapper:
		return &unescapeMapper{Mapper: t}
	case traits.Lister:
		return &unescapeLister{Lister: t}
	default:
		return v
	}
}

// unescapeMapper reads claims.a.foo__dot__bar as the key foo.bar of the object a, and
// a.plain as plain, as kube-apiserver does.
type unescapeMapper struct{ traits.Mapper }

func (m *unescapeMapper) Find(key ref.Val) (ref.Val, bool) {
	if s, ok := key.(types.String); ok {
		if name, ok := unescape(string(s)); ok && name != string(s) {
			key = types.String(name)
		}
	}
	v, ok := m.Mapper.Find(key)
	return unescapeWrapper(v), ok
}

type unescapeLister struct{ traits.Lister }

func (l *unescapeLister) Get(index ref.Val) ref.Val { return unescapeWrapper(l.Lister.Get(index)) }

// reservedWords are CEL's reserved identifiers, which Kubernetes escapes as __word__.
var reservedWords = map[string]bool{
	"true": true, "false": true, "null": true, "in": true,
	"as": true, "break": true, "const": true, "continue": true, "else": true,
	"for": true, "function": true, "if": true, "import": true, "let": true,
	"loop": true, "package": true, "namespace": true, "return": true,
	"var": true, "void": true, "while": true,
}

// unescape undoes the Kubernetes CEL escapes in a field name: __dot__ is ".", __dash__ "-",
// __slash__ "/", __underscores__ "__", and __word__ a reserved word that is the whole name.
// It reports false for any other __x__ sequence, as kube-apiserver's cel.Unescape does.
func unescape(s string) (string, bool) {
	if !strings.Contains(s, "__") {
		return s, true // the common case: nothing to undo
	}
	var b strings.Builder
	rest := s
	for {
		start := strings.Index(rest, "__")
		if start < 0 {
			b.WriteString(rest)
			return b.String(), true
		}
		// An escape is "__", one or more characters other than "_", then "__".
		end := start + 2
		for end < len(rest) && rest[end] != '_' {
			end++
		}
		if end == start+2 || !strings.HasPrefix(rest[end:], "__") {
			// Not an escape here: keep the first "_" and look again from the next one.
			b.WriteString(rest[:start+1])
			rest = rest[start+1:]
			continue
		}
		b.WriteString(rest[:start])
		switch word := rest[start+2 : end]; word {
		case "underscores":
			b.WriteString("__")
		case "dot":
			b.WriteString(".")
		case "dash":
			b.WriteString("-")
		case "slash":
			b.WriteString("/")
		default:
			if !reservedWords[word] || end+2-start != len(s) {
				return "", false
			}
			b.WriteString(word)
		}
		rest = rest[end+2:]
	}
}
