package authn

import "context"

// Check is one step of a token's verification, as `oidc-authenticator verify` shows it.
type Check struct {
	Name   string
	Detail string
	Err    error
}

// Trace collects the checks made for one token. It is only attached by tools that explain
// a decision; the TokenReview path runs without one.
type Trace struct{ Checks []Check }

type traceKey struct{}

// WithTrace returns a context whose verification steps are recorded in t.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// Record notes the outcome of a check when ctx carries a Trace, and returns err unchanged.
func Record(ctx context.Context, name, detail string, err error) error {
	if t, ok := ctx.Value(traceKey{}).(*Trace); ok {
		t.Checks = append(t.Checks, Check{Name: name, Detail: detail, Err: err})
	}
	return err
}

// Traced reports whether ctx carries a Trace, so that callers on the hot path build a
// check's detail only when someone will read it.
func Traced(ctx context.Context) bool {
	_, ok := ctx.Value(traceKey{}).(*Trace)
	return ok
}
