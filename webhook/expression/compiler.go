// Package expression compiles and evaluates the CEL expressions of the configuration and of
// the identity mapping, with the variables, libraries and cost limits of kube-apiserver's
// structured JWT authenticator.
//
// Two variables exist, each in its own environment, as in kube-apiserver:
//   - claims: every claim of a verified token, nested values included (claims.realm_access.roles),
//     for claimValidationRules, claimMappings and the mapping's entries;
//   - user: the final user (username, uid, groups, extra), for userValidationRules.
//
// Expressions are compiled once, when the configuration or a mapping version is loaded, into
// Programs that are safe for concurrent use; each evaluation is bounded by a cost limit per
// call and by a Budget shared by the expressions evaluated for one token.
package expression

import (
	"errors"
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
	"k8s.io/apiserver/pkg/cel/library"
)

// Cost limits, in CEL's cost units, the same as kube-apiserver's (k8s.io/apiserver/pkg/apis/cel):
// one unit is roughly one basic operation, and a million take about a tenth of a second.
const (
	// PerCallLimit bounds one evaluation of one expression (kube-apiserver's PerCallLimit).
	PerCallLimit = 1_000_000
	// BudgetLimit bounds all the expressions evaluated for one token in one phase: the claim
	// validation rules and mappings of its issuer, the mapping's entries, or the user
	// validation rules (kube-apiserver's RuntimeCELCostBudget).
	BudgetLimit = 10_000_000
	// checkFrequency is how many comprehension steps run between two checks of the request
	// context's cancellation (kube-apiserver's CheckFrequency).
	checkFrequency = 100
)

// The variable names, as in kube-apiserver.
const (
	ClaimsVar = "claims"
	UserVar   = "user"
)

// userTypeName is the CEL type of the user variable, as kube-apiserver names it.
const userTypeName = "kubernetes.UserInfo"

// Result is what an expression must evaluate to.
type Result int

const (
	// Bool expressions are conditions; a compile-time type check rejects anything else.
	Bool Result = iota
	// Value expressions map claims to a string or a list of strings; as in kube-apiserver,
	// claims are dynamically typed, so the type is checked when the expression is evaluated.
	Value
)

// Compiler holds the CEL environments. Building one takes a few milliseconds; build it once
// per configuration or mapping version, not per expression.
type Compiler struct {
	claims *cel.Env
	user   *cel.Env
}

// NewCompiler builds the environments for the claims and user variables.
func NewCompiler() (*Compiler, error) {
	base, err := cel.NewEnv(baseOptions()...)
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	// As in kube-apiserver, claims is a map(string, any): a claim is of type any, which a
	// comprehension ranges over only through dyn(), e.g. dyn(claims.groups).map(...).
	claims, err := base.Extend(cel.Variable(ClaimsVar, cel.MapType(cel.StringType, cel.AnyType)))
	if err != nil {
		return nil, fmt.Errorf("CEL environment for claims: %w", err)
	}
	users := &userTypeProvider{Provider: base.CELTypeProvider()}
	user, err := base.Extend(
		cel.CustomTypeProvider(users),
		cel.Variable(UserVar, cel.ObjectType(userTypeName)),
	)
	if err != nil {
		return nil, fmt.Errorf("CEL environment for user: %w", err)
	}
	return &Compiler{claims: claims, user: user}, nil
}

// baseOptions are the language settings and libraries of kube-apiserver's base CEL environment
// that cel-go itself provides: the standard library, optional values, the strings (v2),
// sets, lists (v3) and two-variable comprehension extensions, and the same literal checks.
// kube-apiserver's own Kubernetes libraries (url, regex find, ip, cidr, quantity, semver,
// format, authz and its list helpers) are not available here.
func baseOptions() []cel.EnvOption {
	return []cel.EnvOption{
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		cel.ASTValidators(
			cel.ValidateDurationLiterals(),
			cel.ValidateTimestampLiterals(),
			cel.ValidateRegexLiterals(),
			cel.ValidateHomogeneousAggregateLiterals(),
		),
		ext.Strings(ext.StringsVersion(2)),
		ext.Sets(),
		ext.TwoVarComprehensions(),
		ext.Lists(ext.ListsVersion(3)),
		// As kube-apiserver: has() costs nothing, as before cel-go v0.17.7.
		cel.CostEstimatorOptions(checker.PresenceTestHasCost(false)),
	}
}

// programOptions bound each evaluation as kube-apiserver does, with its size-aware runtime
// cost estimator: a string function (replace, split, lowerAscii, indexOf, ...) costs in
// proportion to the strings it reads and builds, not one unit whatever their size.
func programOptions() []cel.ProgramOption {
	return []cel.ProgramOption{
		cel.EvalOptions(cel.OptOptimize, cel.OptTrackCost),
		cel.CostTracking(&library.CostEstimator{}),
		cel.CostLimit(PerCallLimit),
		cel.CostTrackerOptions(interpreter.PresenceTestHasCost(false)),
		cel.InterruptCheckFrequency(checkFrequency),
	}
}

// Program is a compiled expression. It is immutable and safe for concurrent use.
type Program struct {
	field  string
	text   string
	result Result
	prog   cel.Program
	ast    *ast.AST
}

// Field is where the expression is written, e.g. jwt[0].claimMappings.username.expression.
func (p *Program) Field() string { return p.field }

// Text is the expression as written.
func (p *Program) Text() string { return p.text }

// CompileClaims compiles an expression over the claims variable. field names where it is
// written, for the messages of evaluation errors. The error says why it does not compile, in
// kube-apiserver's words; the caller adds the field and the expression.
func (c *Compiler) CompileClaims(field, text string, want Result) (*Program, error) {
	return compile(c.claims, field, text, want)
}

// CompileUser compiles a condition over the user variable.
func (c *Compiler) CompileUser(field, text string) (*Program, error) {
	return compile(c.user, field, text, Bool)
}

func compile(env *cel.Env, field, text string, want Result) (*Program, error) {
	checked, issues := env.Compile(text)
	if issues != nil && issues.Err() != nil {
		return nil, errors.New("compilation failed: " + issues.String())
	}
	if want == Bool && !checked.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("must evaluate to bool, not %s", checked.OutputType())
	}
	prog, err := env.Program(checked, programOptions()...)
	if err != nil {
		return nil, fmt.Errorf("program instantiation failed: %w", err)
	}
	return &Program{field: field, text: text, result: want, prog: prog, ast: checked.NativeRep()}, nil
}

// Selects reports whether the expression reads variable's key name by name: as a field
// (claims.email), a presence test (has(claims.email)), an optional field (claims.?email), an
// index with a constant key (claims['email'], claims[?'email']) or a membership test
// ('email' in claims). kube-apiserver asks this of claims.email and claims.email_verified.
func (p *Program) Selects(variable, name string) bool {
	keys, _ := p.references(variable)
	return keys[name]
}

// Reads reports whether the expression may read variable's key name: by name (Selects), or
// through any use of the variable as a whole (claims.exists(k, ...), dyn(claims), an index
// with a computed key), which could read every key. It is the rule for what must not read an
// unverified email, decided on the compiled expression rather than on its spelling.
func (p *Program) Reads(variable, name string) bool {
	keys, whole := p.references(variable)
	return whole || keys[name]
}

// references walks the expression: the keys of variable it reads by a constant name, and
// whether it uses the variable in any other way.
func (p *Program) references(variable string) (keys map[string]bool, whole bool) {
	keys = map[string]bool{}
	var walk func(e ast.Expr)
	walk = func(e ast.Expr) {
		switch e.Kind() {
		case ast.IdentKind:
			if e.AsIdent() == variable {
				whole = true
			}
		case ast.SelectKind:
			s := e.AsSelect()
			if isIdent(s.Operand(), variable) {
				keys[s.FieldName()] = true
				return
			}
			walk(s.Operand())
		case ast.CallKind:
			c := e.AsCall()
			args := c.Args()
			switch fn := c.FunctionName(); {
			case (fn == "_[_]" || fn == "_[?_]" || fn == "_?._") && len(args) == 2 && isIdent(args[0], variable):
				if k, ok := literalString(args[1]); ok {
					keys[k] = true
					return
				}
			case fn == "@in" && len(args) == 2 && isIdent(args[1], variable):
				if k, ok := literalString(args[0]); ok {
					keys[k] = true
					return
				}
			}
			if c.IsMemberFunction() {
				walk(c.Target())
			}
			for _, a := range args {
				walk(a)
			}
		case ast.ListKind:
			for _, el := range e.AsList().Elements() {
				walk(el)
			}
		case ast.MapKind:
			for _, en := range e.AsMap().Entries() {
				me := en.AsMapEntry()
				walk(me.Key())
				walk(me.Value())
			}
		case ast.StructKind:
			for _, f := range e.AsStruct().Fields() {
				walk(f.AsStructField().Value())
			}
		case ast.ComprehensionKind:
			c := e.AsComprehension()
			walk(c.IterRange())
			walk(c.AccuInit())
			walk(c.LoopCondition())
			walk(c.LoopStep())
			walk(c.Result())
		}
	}
	walk(p.ast.Expr())
	return keys, whole
}

func literalString(e ast.Expr) (string, bool) {
	if e.Kind() != ast.LiteralKind {
		return "", false
	}
	v, ok := e.AsLiteral().(types.String)
	return string(v), ok
}

func isIdent(e ast.Expr, name string) bool {
	return e.Kind() == ast.IdentKind && e.AsIdent() == name
}

// userTypeProvider declares the user variable's type, kubernetes.UserInfo, with the fields
// kube-apiserver gives it, so that user.username is a string and user.nosuchfield does not
// compile. At evaluation the user is a map with those four keys.
type userTypeProvider struct {
	types.Provider
}

var userFields = map[string]*types.Type{
	"username": types.StringType,
	"uid":      types.StringType,
	"groups":   types.NewListType(types.StringType),
	"extra":    types.NewMapType(types.StringType, types.NewListType(types.StringType)),
}

func (p *userTypeProvider) FindStructType(name string) (*types.Type, bool) {
	if name == userTypeName {
		return types.NewTypeTypeWithParam(types.NewObjectType(userTypeName)), true
	}
	return p.Provider.FindStructType(name)
}

func (p *userTypeProvider) FindStructFieldNames(name string) ([]string, bool) {
	if name == userTypeName {
		return []string{"username", "uid", "groups", "extra"}, true
	}
	return p.Provider.FindStructFieldNames(name)
}

func (p *userTypeProvider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if name == userTypeName {
		t, ok := userFields[field]
		if !ok {
			return nil, false
		}
		return &types.FieldType{Type: t}, true
	}
	return p.Provider.FindStructFieldType(name, field)
}
