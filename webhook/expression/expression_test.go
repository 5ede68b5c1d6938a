package expression_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/expression"
)

func compiler(t *testing.T) *expression.Compiler {
	t.Helper()
	c, err := expression.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func claimsProgram(t *testing.T, c *expression.Compiler, text string, want expression.Result) *expression.Program {
	t.Helper()
	p, err := c.CompileClaims("test.expression", text, want)
	if err != nil {
		t.Fatalf("compile %q: %v", text, err)
	}
	return p
}

var testClaims = map[string]any{
	"sub":            "alice-sub",
	"email":          "alice@example.com",
	"email_verified": true,
	"hd":             "example.com",
	"groups":         []any{"developers", "", "admins"},
	"realm_access":   map[string]any{"roles": []any{"viewer", "editor"}},
	"org.team":       "blue",
	"https://example.com/claims": map[string]any{
		"tenant": "acme",
	},
	"age":     42.0, // JSON numbers decode to float64
	"nothing": nil,
	"mixed":   []any{"a", 1.0},
}

// The claims variable: the whole claim set, nested values included, with kube-apiserver's
// conversions (numbers are doubles) and its escapes for names that are not CEL identifiers.
func TestClaimsVariable(t *testing.T) {
	c := compiler(t)
	vars := expression.ClaimsVars(testClaims)
	tests := []struct {
		expr string
		want []string
	}{
		{"claims.sub", []string{"alice-sub"}},
		{"claims.realm_access.roles", []string{"viewer", "editor"}},
		{"claims.realm_access.roles.map(r, 'kc:' + r)", []string{"kc:viewer", "kc:editor"}},
		{"dyn(claims.groups).filter(g, g != 'admins')", []string{"developers"}},        // "" dropped
		{"claims.org__dot__team", []string{"blue"}},                                    // escapes: __dot__ is "."
		{"claims['https://example.com/claims'].tenant", []string{"acme"}},              // any name by index
		{"claims.?nickname.orValue('none')", []string{"none"}},                         // optional values
		{"has(claims.hd) ? claims.hd : 'none'", []string{"example.com"}},               // presence test
		{"claims.age == 42 ? 'yes' : 'no'", []string{"yes"}},                           // double 42.0 == int 42
		{"claims.email.split('@')[1]", []string{"example.com"}},                        // strings extension
		{"sets.contains(claims.groups, ['admins']) ? 'admin' : ''", []string{"admin"}}, // sets extension
		{"claims.realm_access.roles.sort()", []string{"editor", "viewer"}},             // lists extension
		{"claims.filter(k, k == 'hd')", []string{"hd"}},                                // a comprehension over claims ranges over names
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			b := expression.NewBudget()
			got, err := claimsProgram(t, c, tc.expr, expression.Value).Strings(context.Background(), vars, &b)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// Groups and extra values follow kube-apiserver's convertCELValueToStringList: a string or a
// list of strings; "", [] and null mean none; empty strings in a list are dropped; anything
// else is an error.
func TestStrings(t *testing.T) {
	c := compiler(t)
	vars := expression.ClaimsVars(testClaims)
	tests := []struct {
		expr    string
		want    []string
		wantErr string
	}{
		{expr: "claims.hd", want: []string{"example.com"}},
		{expr: "''", want: nil},
		{expr: "[]", want: nil},
		{expr: "null", want: nil},
		{expr: "claims.nothing", want: nil},
		{expr: "claims.groups", want: []string{"developers", "admins"}},
		{expr: "['a', '', 'b']", want: []string{"a", "b"}},
		{expr: "claims.age", wantErr: "must return a string or a list of strings, not double"},
		{expr: "claims.mixed", wantErr: "the list holds something else"},
		{expr: "claims.realm_access", wantErr: "must return a string or a list of strings"},
		{expr: "claims.nickname", wantErr: "expression 'claims.nickname' resulted in error: no such key: nickname"},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			b := expression.NewBudget()
			got, err := claimsProgram(t, c, tc.expr, expression.Value).Strings(context.Background(), vars, &b)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// The username and uid mappings must return a string (kube-apiserver: "must return a string").
func TestString(t *testing.T) {
	c := compiler(t)
	vars := expression.ClaimsVars(testClaims)
	b := expression.NewBudget()
	if got, err := claimsProgram(t, c, "'oidc:' + claims.sub", expression.Value).String(context.Background(), vars, &b); err != nil || got != "oidc:alice-sub" {
		t.Fatalf("got %q, %v", got, err)
	}
	_, err := claimsProgram(t, c, "claims.groups", expression.Value).String(context.Background(), vars, &b)
	if err == nil || !strings.Contains(err.Error(), "must return a string, not list") {
		t.Fatalf("list as a string: %v", err)
	}
}

// The user variable has the fields of kube-apiserver's kubernetes.UserInfo: username, uid,
// groups (list of strings) and extra (map of string to list of strings).
func TestUserVariable(t *testing.T) {
	c := compiler(t)
	u := authn.User{Name: "alice", UID: "42", Groups: []string{"dev"}, Extra: map[string][]string{"example.com/team": {"blue"}}}
	tests := []struct {
		expr string
		want bool
	}{
		{"!user.username.startsWith('system:')", true},
		{"user.uid == '42'", true},
		{"'dev' in user.groups", true},
		{"user.groups.all(g, !g.startsWith('system:'))", true},
		{"user.extra['example.com/team'] == ['blue']", true},
		{"'example.com/other' in user.extra", false},
	}
	for _, tc := range tests {
		p, err := c.CompileUser("test.expression", tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		b := expression.NewBudget()
		got, err := p.Bool(context.Background(), expression.UserVars(u), &b)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
	// A user with no groups and no extra still has both fields, empty.
	p, _ := c.CompileUser("test.expression", "size(user.groups) == 0 && size(user.extra) == 0")
	b := expression.NewBudget()
	if ok, err := p.Bool(context.Background(), expression.UserVars(authn.User{Name: "bob"}), &b); !ok || err != nil {
		t.Fatalf("empty user: %v, %v", ok, err)
	}
}

// Compile and type errors say what is wrong, in kube-apiserver's words.
func TestCompileErrors(t *testing.T) {
	c := compiler(t)
	tests := []struct {
		expr string
		user bool
		want string
	}{
		{expr: "claims.sub +", want: "compilation failed: ERROR: <input>:1:13: Syntax error"},
		{expr: "claim.sub", want: "undeclared reference to 'claim'"},
		{expr: "claims.hd", want: "must evaluate to bool, not google.protobuf.Any"},
		// As in kube-apiserver, a claim is of type any, which a comprehension cannot range
		// over without dyn(): dyn(claims.groups).map(...).
		{expr: "claims.groups.exists(g, g == 'a')", want: "expression of type 'any' cannot be range of a comprehension"},
		{expr: "user.username", user: true, want: "must evaluate to bool, not string"},
		{expr: "user.name == ''", user: true, want: "undefined field 'name'"},
		{expr: "claims.sub == ''", user: true, want: "undeclared reference to 'claims'"},
		{expr: "[1, 'a'] == []", want: "expected type 'int' but found 'string'"}, // homogeneous literals
		{expr: "claims.sub.matches('[')", want: "invalid matches argument"},      // regex literals checked
	}
	for _, tc := range tests {
		var err error
		if tc.user {
			_, err = c.CompileUser("f", tc.expr)
		} else {
			_, err = c.CompileClaims("f", tc.expr, expression.Bool)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.expr, err, tc.want)
		}
	}
}

// Selects finds claims.X in every form kube-apiserver's email_verified rule looks at.
func TestSelects(t *testing.T) {
	c := compiler(t)
	tests := []struct {
		expr string
		want bool
	}{
		{"claims.email_verified == true", true},
		{"has(claims.email_verified)", true},
		{"claims.?email_verified.orValue(true) == true", true},
		{"[claims.sub].exists(s, claims.email_verified)", true},
		{"claims['email_verified'] == true", true}, // an index with a constant key reads the key too
		{"claims[?'email_verified'].orValue(false) == true", true},
		{"'email_verified' in claims", true},
		{"claims.email == 'x'", false},
		{"claims.exists(k, k == 'email_verified')", false}, // may read it, but does not name it
	}
	for _, tc := range tests {
		if got := claimsProgram(t, c, tc.expr, expression.Bool).Selects("claims", "email_verified"); got != tc.want {
			t.Errorf("%s: Selects = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// Reads decides, on the compiled expression, whether it may read a claim: every CEL form that
// can reach claims.email counts, so that the mapping's email_verified guard cannot be
// bypassed by spelling (the security review found claims['email'] did).
func TestReads(t *testing.T) {
	c := compiler(t)
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{"claims.email == 'ceo@example.com'", true},
		{"claims['email'] == 'ceo@example.com'", true},
		{"claims[?'email'].orValue('') == 'ceo@example.com'", true},
		{"claims.?email.orValue('') == 'ceo@example.com'", true},
		{"has(claims.email)", true},
		{"'email' in claims", true},
		{"claims.exists(k, k == 'email' && claims[k] == 'ceo@example.com')", true},
		{"claims.all(k, k != 'x')", true},
		{"dyn(claims).email == 'ceo@example.com'", true},
		{"claims[claims.sub] == 'x'", true},
		{"[claims].exists(c, c.email == 'ceo@example.com')", true},
		{"{'a': claims}.a.email == 'x'", true},
		{"claims.sub == 'x'", false},
		{"claims['sub'] == 'x' && 'admins' in dyn(claims.groups)", false},
		{"claims.emails == 'x'", false},
	} {
		if got := claimsProgram(t, c, tc.expr, expression.Bool).Reads("claims", "email"); got != tc.want {
			t.Errorf("%s: Reads(email) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// Cost bounds, measured by CEL's cost accounting (never by a clock): an expression costing
// more than PerCallLimit stops there, and the expressions of one phase share a budget of
// BudgetLimit after which none runs.
func TestCostLimits(t *testing.T) {
	c := compiler(t)
	ctx := context.Background()
	// Scanning a string costs a tenth of a unit per character: 4 million characters cost
	// about 400,000 per scan, whatever the wall time.
	long := strings.Repeat("a", 4_000_000)
	vars := expression.ClaimsVars(map[string]any{"s": long, "roles": make([]any, 2000)})

	one := claimsProgram(t, c, "claims.s.contains('b')", expression.Bool)
	cost, err := one.Cost(ctx, vars)
	if err != nil || cost < 400_000 || cost > 500_000 {
		t.Fatalf("one scan costs %d (%v); want about 400,000", cost, err)
	}

	t.Run("per call", func(t *testing.T) {
		for _, expr := range []string{
			"claims.s.contains('b') || claims.s.contains('c') || claims.s.contains('d')",
			// 2,000 scans (800 million units) if it ran to the end: stopped at the third
			"dyn(claims.roles).exists(r, claims.s.contains('b'))",
		} {
			p := claimsProgram(t, c, expr, expression.Bool)
			b := expression.NewBudget()
			_, err := p.Bool(ctx, vars, &b)
			if !errors.Is(err, expression.ErrCostLimit) || !strings.Contains(err.Error(), fmt.Sprint(expression.PerCallLimit)) {
				t.Fatalf("%s: %v; want the per-call limit", expr, err)
			}
			if spent := expression.BudgetLimit - b.Left(); spent < expression.PerCallLimit {
				t.Fatalf("%s: charged %d to the budget, want at least the limit", expr, spent)
			}
		}
	})

	t.Run("budget", func(t *testing.T) {
		b := expression.NewBudget()
		n := 0
		for ; n < 100; n++ {
			p := claimsProgram(t, c, fmt.Sprintf("claims.s.contains('b%d')", n), expression.Bool)
			if _, err := p.Bool(ctx, vars, &b); err != nil {
				if !errors.Is(err, expression.ErrCostLimit) {
					t.Fatalf("expression %d: %v", n, err)
				}
				break
			}
		}
		// Each costs about a 25th of the budget: the 25th or so is refused, not the first.
		if want := int(expression.BudgetLimit / cost); n < want-1 || n > want+1 {
			t.Fatalf("the budget stopped expression %d; want about %d", n, want)
		}
		p := claimsProgram(t, c, "true", expression.Bool)
		if _, err := p.Bool(ctx, vars, &b); !errors.Is(err, expression.ErrCostLimit) || !strings.Contains(err.Error(), "was not evaluated") {
			t.Fatalf("after the budget is spent: %v", err)
		}
	})

	t.Run("cancelled request", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		p := claimsProgram(t, c, "dyn(claims.roles).all(a, dyn(claims.roles).all(b, a == b))", expression.Bool)
		b := expression.NewBudget()
		// The interruption is checked every 100 comprehension steps.
		if _, err := p.Bool(cctx, vars, &b); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled context: %v", err)
		}
	})
}

// String functions cost what they read and build, as kube-apiserver's estimator says: five
// chained replaces that grow a 1,000-character claim tenfold each would build ~100 MB; the
// per-call limit stops them (the security review found each cost ~1 unit whatever its input).
func TestStringFunctionsCostBySize(t *testing.T) {
	c := compiler(t)
	ctx := context.Background()
	vars := expression.ClaimsVars(map[string]any{"s": strings.Repeat("a", 1000)})
	grow := "claims.s" + strings.Repeat(".replace('a', 'aaaaaaaaaa')", 5)
	budget := expression.NewBudget()
	_, err := claimsProgram(t, c, grow+".size() > 0", expression.Bool).Bool(ctx, vars, &budget)
	if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
		t.Fatalf("five chained replaces: want a cost limit error, got %v", err)
	}
	for _, tc := range []struct {
		expr    string
		atLeast uint64
	}{
		// A traversal costs a tenth of a unit per character; replace and split twice that.
		{"claims.s.lowerAscii() != ''", 100},
		{"claims.s.replace('a', 'b') != ''", 200},
		{"claims.s.split('a').size() > 0", 200},
		{"claims.s.indexOf('b') < 0", 100},
	} {
		cost, err := claimsProgram(t, c, tc.expr, expression.Bool).Cost(ctx, vars)
		if err != nil || cost < tc.atLeast {
			t.Errorf("%s over 1,000 characters costs %d (%v); want at least %d", tc.expr, cost, err, tc.atLeast)
		}
	}
}
