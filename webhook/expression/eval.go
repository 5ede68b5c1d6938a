package expression

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
)

// ErrCostLimit is wrapped by the errors of evaluations stopped by a cost limit: the limit
// per call, or the Budget of the phase.
var ErrCostLimit = errors.New("cost limit exceeded")

// Budget is the cost the expressions of one phase may still spend for one token. The zero
// value has nothing left; start each phase with NewBudget.
type Budget struct {
	left uint64
}

// NewBudget returns a full budget of BudgetLimit.
func NewBudget() Budget { return Budget{left: BudgetLimit} }

// Left is the cost still available.
func (b *Budget) Left() uint64 { return b.left }

// spend charges cost; it reports false when the budget is exhausted.
func (b *Budget) spend(cost uint64) bool {
	if cost > b.left {
		b.left = 0
		return false
	}
	b.left -= cost
	return true
}

// eval runs the program with vars, charging its cost to b. The error names the expression.
func (p *Program) eval(ctx context.Context, vars *Vars, b *Budget) (ref.Val, error) {
	if b.left == 0 {
		return nil, fmt.Errorf("expression '%s' was not evaluated: %w: the expressions evaluated before it for this token spent the budget of %d", p.text, ErrCostLimit, BudgetLimit)
	}
	val, details, err := p.prog.ContextEval(ctx, vars)
	var cost uint64
	if details != nil && details.ActualCost() != nil {
		cost = *details.ActualCost()
	}
	if err != nil {
		var cancelled interpreter.EvalCancelledError
		if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
			b.spend(cost)
			return nil, fmt.Errorf("expression '%s': %w: it costs more than %d", p.text, ErrCostLimit, PerCallLimit)
		}
		return nil, fmt.Errorf("expression '%s' resulted in error: %w", p.text, err)
	}
	if !b.spend(cost) {
		return nil, fmt.Errorf("expression '%s': %w: the expressions evaluated for this token cost more than %d", p.text, ErrCostLimit, BudgetLimit)
	}
	return val, nil
}

// Cost evaluates the program, without a budget, and returns its cost as CEL's cost
// accounting tracks it (stopping at PerCallLimit), to measure an expression.
func (p *Program) Cost(ctx context.Context, vars *Vars) (uint64, error) {
	_, details, err := p.prog.ContextEval(ctx, vars)
	if details == nil || details.ActualCost() == nil {
		return 0, err
	}
	return *details.ActualCost(), err
}

// Bool evaluates a condition.
func (p *Program) Bool(ctx context.Context, vars *Vars, b *Budget) (bool, error) {
	val, err := p.eval(ctx, vars, b)
	if err != nil {
		return false, err
	}
	v, ok := val.(types.Bool)
	if !ok {
		return false, fmt.Errorf("expression '%s' must return a boolean, not %s", p.text, val.Type().TypeName())
	}
	return bool(v), nil
}

// String evaluates an expression that must return a string (the username and uid mappings).
func (p *Program) String(ctx context.Context, vars *Vars, b *Budget) (string, error) {
	val, err := p.eval(ctx, vars, b)
	if err != nil {
		return "", err
	}
	v, ok := val.(types.String)
	if !ok {
		return "", fmt.Errorf("expression '%s' must return a string, not %s", p.text, val.Type().TypeName())
	}
	return string(v), nil
}

// Strings evaluates an expression that must return a string, a list of strings or null (the
// groups and extra mappings), with kube-apiserver's rules: "", [] and null give nil, and empty
// strings in a list are dropped. Unlike kube-apiserver, which refuses the lists CEL backs with
// a Go []string (such as split()'s), every CEL list of strings is accepted.
func (p *Program) Strings(ctx context.Context, vars *Vars, b *Budget) ([]string, error) {
	val, err := p.eval(ctx, vars, b)
	if err != nil {
		return nil, err
	}
	switch v := val.(type) {
	case types.String:
		if v == "" {
			return nil, nil
		}
		return []string{string(v)}, nil
	case types.Null:
		return nil, nil
	case traits.Lister:
		if v.Type() != types.ListType {
			break
		}
		n, _ := v.Size().(types.Int)
		if n == 0 {
			return nil, nil
		}
		out := make([]string, 0, int(n))
		for it := v.Iterator(); it.HasNext() == types.True; {
			s, ok := it.Next().(types.String)
			if !ok {
				return nil, fmt.Errorf("expression '%s' must return a string or a list of strings; the list holds something else", p.text)
			}
			if s != "" {
				out = append(out, string(s))
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	}
	return nil, fmt.Errorf("expression '%s' must return a string or a list of strings, not %s", p.text, val.Type().TypeName())
}
