package config

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/expression"
)

// Expressions are the compiled CEL expressions of one jwt[] entry, in the order of the file.
// A nil Program is a form the entry does not use.
type Expressions struct {
	// ClaimValidationRules are the claimValidationRules written with expression.
	ClaimValidationRules []ValidationRule
	Username             *expression.Program
	Groups               *expression.Program
	UID                  *expression.Program
	Extra                []ExtraExpression
	// UserValidationRules judge the final user, after the identity mapping.
	UserValidationRules []ValidationRule
}

// ValidationRule is a compiled claim or user validation rule.
type ValidationRule struct {
	Program *expression.Program
	// Message says why a token is refused when the rule is false.
	Message string
}

// ExtraExpression fills one extra key.
type ExtraExpression struct {
	Key     string
	Program *expression.Program
}

// ClaimsEmpty reports whether no expression reads the claims: then a token's claims need no
// conversion for CEL.
func (x *Expressions) ClaimsEmpty() bool {
	return x == nil || len(x.ClaimValidationRules) == 0 && x.Username == nil && x.Groups == nil &&
		x.UID == nil && len(x.Extra) == 0
}

// WritesExpressions reports whether the entry has any expression form, compiled or not.
func (j *JWTAuthenticator) WritesExpressions() bool {
	for _, r := range j.ClaimValidationRules {
		if r.Expression != "" {
			return true
		}
	}
	m := j.ClaimMappings
	return m.Username.Expression != "" || m.Groups.Expression != "" || m.UID.Expression != "" ||
		len(m.Extra) > 0 || len(j.UserValidationRules) > 0
}

// compilers builds the CEL environments on first use, so that a configuration without
// expressions never pays for them, and one with many builds them once.
type compilers struct {
	c   *expression.Compiler
	err error
}

func (cs *compilers) get() (*expression.Compiler, error) {
	if cs.c == nil && cs.err == nil {
		cs.c, cs.err = expression.NewCompiler()
	}
	return cs.c, cs.err
}

// compileClaims compiles an expression over claims, as a field error naming the field and the
// expression when it does not compile.
func (cs *compilers) compileClaims(p *field.Path, text string, want expression.Result) (*expression.Program, *field.Error) {
	c, err := cs.get()
	if err != nil {
		return nil, field.InternalError(p, err)
	}
	prog, err := c.CompileClaims(p.String(), text, want)
	if err != nil {
		return nil, field.Invalid(p, text, err.Error())
	}
	return prog, nil
}

func (cs *compilers) compileUser(p *field.Path, text string) (*expression.Program, *field.Error) {
	c, err := cs.get()
	if err != nil {
		return nil, field.InternalError(p, err)
	}
	prog, err := c.CompileUser(p.String(), text)
	if err != nil {
		return nil, field.Invalid(p, text, err.Error())
	}
	return prog, nil
}

// validateClaimRules applies kube-apiserver's rules: claim (with requiredValue, no message)
// or expression (with message, no requiredValue), no duplicate claim or expression.
func validateClaimRules(rules []ClaimValidationRule, p *field.Path, cs *compilers, x *Expressions) field.ErrorList {
	var errs field.ErrorList
	seenClaims, seenExpressions := sets.New[string](), sets.New[string]()
	for i, r := range rules {
		rp := p.Index(i)
		switch {
		case r.Claim != "" && r.Expression != "":
			errs = append(errs, field.Invalid(rp, r.Claim, "claim and expression can't both be set"))
		case r.Claim == "" && r.Expression == "":
			errs = append(errs, field.Required(rp.Child("claim"), "claim or expression is required"))
		case r.Claim != "":
			if r.Message != "" {
				errs = append(errs, field.Invalid(rp.Child("message"), r.Message, "may only be set with expression"))
			}
			if seenClaims.Has(r.Claim) {
				errs = append(errs, field.Duplicate(rp.Child("claim"), r.Claim))
			}
			seenClaims.Insert(r.Claim)
		default:
			ep := rp.Child("expression")
			if r.RequiredValue != "" {
				errs = append(errs, field.Invalid(rp.Child("requiredValue"), r.RequiredValue, "may not be specified when expression is set"))
			}
			if seenExpressions.Has(r.Expression) {
				errs = append(errs, field.Duplicate(ep, r.Expression))
				continue
			}
			seenExpressions.Insert(r.Expression)
			prog, err := cs.compileClaims(ep, r.Expression, expression.Bool)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			x.ClaimValidationRules = append(x.ClaimValidationRules, ValidationRule{Program: prog, Message: r.Message})
		}
	}
	return errs
}

// validateClaimMappings applies kube-apiserver's rules to username, groups, uid and extra,
// and the rule that an expression reading claims.email also checks claims.email_verified.
func validateClaimMappings(m ClaimMappings, p *field.Path, cs *compilers, x *Expressions) field.ErrorList {
	var errs field.ErrorList
	up := p.Child("username")
	var e field.ErrorList
	x.Username, e = validatePrefixed(m.Username, up, true, cs)
	errs = append(errs, e...)
	gp := p.Child("groups")
	x.Groups, e = validatePrefixed(m.Groups, gp, false, cs)
	errs = append(errs, e...)
	if m.Groups.Claim == "" && m.Groups.Expression == "" && m.Groups.Prefix != nil {
		errs = append(errs, field.Invalid(gp.Child("prefix"), *m.Groups.Prefix, "may only be set with claim"))
	}

	switch {
	case m.UID.Claim != "" && m.UID.Expression != "":
		errs = append(errs, field.Invalid(p.Child("uid"), "", "claim and expression can't both be set"))
	case m.UID.Expression != "":
		prog, err := cs.compileClaims(p.Child("uid", "expression"), m.UID.Expression, expression.Value)
		if err != nil {
			errs = append(errs, err)
		}
		x.UID = prog
	}

	seenKeys := sets.New[string]()
	for i, em := range m.Extra {
		ep := p.Child("extra").Index(i)
		kp := ep.Child("key")
		// Keys are namespaced to whoever fills them, e.g. example.org/team, never under
		// Kubernetes' own domains.
		errs = append(errs, utilvalidation.IsDomainPrefixedPath(kp, em.Key)...)
		if em.Key != strings.ToLower(em.Key) {
			errs = append(errs, field.Invalid(kp, em.Key, "must be lowercase"))
		}
		if isKubernetesDomainPrefix(em.Key) {
			errs = append(errs, field.Invalid(kp, em.Key, "k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use"))
		}
		if seenKeys.Has(em.Key) {
			errs = append(errs, field.Duplicate(kp, em.Key))
			continue
		}
		seenKeys.Insert(em.Key)
		if em.ValueExpression == "" {
			errs = append(errs, field.Required(ep.Child("valueExpression"), ""))
			continue
		}
		prog, err := cs.compileClaims(ep.Child("valueExpression"), em.ValueExpression, expression.Value)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		x.Extra = append(x.Extra, ExtraExpression{Key: em.Key, Program: prog})
	}

	if x.Username != nil && x.Username.Selects(expression.ClaimsVar, "email") && !x.checksEmailVerified() {
		errs = append(errs, field.Invalid(up.Child("expression"), m.Username.Expression,
			"claims.email_verified must be used in claimMappings.username.expression or claimMappings.extra[*].valueExpression or claimValidationRules[*].expression when claims.email is used in claimMappings.username.expression"))
	}
	return errs
}

// checksEmailVerified reports whether the username, an extra or a claim validation rule
// reads claims.email_verified.
func (x *Expressions) checksEmailVerified() bool {
	const v = "email_verified"
	if x.Username != nil && x.Username.Selects(expression.ClaimsVar, v) {
		return true
	}
	for _, e := range x.Extra {
		if e.Program.Selects(expression.ClaimsVar, v) {
			return true
		}
	}
	for _, r := range x.ClaimValidationRules {
		if r.Program.Selects(expression.ClaimsVar, v) {
			return true
		}
	}
	return false
}

// validatePrefixed checks a username or groups mapping: claim (with an explicit prefix) or
// expression (without one), not both.
func validatePrefixed(m PrefixedClaimOrExpression, p *field.Path, required bool, cs *compilers) (*expression.Program, field.ErrorList) {
	var errs field.ErrorList
	switch {
	case m.Claim != "" && m.Expression != "":
		errs = append(errs, field.Invalid(p, "", "claim and expression can't both be set"))
	case m.Claim == "" && m.Expression == "":
		if required {
			errs = append(errs, field.Required(p.Child("claim"), "claim or expression is required, e.g. claim: email or expression: claims.sub"))
		}
	case m.Expression != "":
		if m.Prefix != nil {
			errs = append(errs, field.Invalid(p.Child("prefix"), *m.Prefix, "may not be specified when expression is set; write the prefix in the expression"))
		}
		prog, err := cs.compileClaims(p.Child("expression"), m.Expression, expression.Value)
		if err != nil {
			errs = append(errs, err)
		}
		return prog, errs
	case m.Prefix == nil:
		errs = append(errs, field.Required(p.Child("prefix"), `required when claim is set; use "" for no prefix`))
	}
	return nil, errs
}

// validateUserRules: each rule needs a unique expression over user.
func validateUserRules(rules []UserValidationRule, p *field.Path, cs *compilers, x *Expressions) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, r := range rules {
		ep := p.Index(i).Child("expression")
		if r.Expression == "" {
			errs = append(errs, field.Required(ep, ""))
			continue
		}
		if seen.Has(r.Expression) {
			errs = append(errs, field.Duplicate(ep, r.Expression))
			continue
		}
		seen.Insert(r.Expression)
		prog, err := cs.compileUser(ep, r.Expression)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		x.UserValidationRules = append(x.UserValidationRules, ValidationRule{Program: prog, Message: r.Message})
	}
	return errs
}

func isKubernetesDomainPrefix(key string) bool {
	domain, _, ok := strings.Cut(key, "/")
	if !ok {
		return false
	}
	return domain == "kubernetes.io" || strings.HasSuffix(domain, ".kubernetes.io") ||
		domain == "k8s.io" || strings.HasSuffix(domain, ".k8s.io")
}

// empty reports whether the entry has no expression at all.
func (x *Expressions) empty() bool {
	return x.ClaimsEmpty() && len(x.UserValidationRules) == 0
}
