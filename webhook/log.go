package webhook

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/oidc-authenticator/oidc-authenticator/mapping"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// Refused tokens are logged at most refusalLogRate per second (after a burst of
// refusalLogBurst): anyone who can reach kube-apiserver can send forged tokens, and each would
// otherwise cost a log line. Beyond the rate, refusals are counted and the next line logged
// says how many were left out; the metrics count every one.
const (
	refusalLogRate  = 10
	refusalLogBurst = 50
)

// loggedGroups is how many of a user's groups a decision line lists; groups_total then gives
// their number. An IdP that sends every group (1,000 GUIDs: 40 KB) would otherwise make every
// line that long: past what log pipelines keep as one line (containerd splits lines at
// 16 KiB), and a tenth of such a login's CPU. kube-apiserver's audit log has the whole list.
const loggedGroups = 20

// logDecision logs a review's answer: at info, but at debug for a token allowed from the
// cache (its verification was logged when it was made) and at warn when undecided. When the
// identity mapping was consulted, the line names its version and the entries that matched
// (docs/logging.md has the schema).
func (s *Server) logDecision(ctx context.Context, res authn.Result, applied *mapping.Applied, result, reason string, err error) {
	level := slog.LevelInfo
	switch {
	case result == resultUndecided:
		level = slog.LevelWarn
	case result == resultAllowed && res.Cached:
		level = slog.LevelDebug
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 8)
	if result != resultAllowed {
		if !s.refusals.Allow() {
			s.unlogged.Add(1)
			if s.metrics != nil {
				s.metrics.DecisionLogSuppressed.WithLabelValues(result).Inc()
			}
			return
		}
		if n := s.unlogged.Swap(0); n > 0 {
			attrs = append(attrs, slog.Int64("suppressed", n))
		}
	}
	attrs = append(attrs, slog.String("result", result))
	if reason != "" {
		attrs = append(attrs, slog.String("reason", reason))
	}
	if id := res.Identity; id != nil {
		attrs = append(attrs, slog.String("issuer", id.Issuer), slog.String("subject", id.Subject))
	}
	if result == resultAllowed {
		groups := res.User.Groups
		attrs = append(attrs, slog.String("username", res.User.Name), slog.Any("groups", groupList(groups[:min(len(groups), loggedGroups)])))
		if len(groups) > loggedGroups {
			attrs = append(attrs, slog.Int("groups_total", len(groups)))
		}
		attrs = append(attrs, slog.Bool("cached", res.Cached))
	}
	if applied != nil && applied.Set {
		attrs = append(attrs, slog.String("mapping_version", applied.Version), slog.Any("mapping_entries", applied.Entries()))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	s.log.LogAttrs(ctx, level, "TokenReview", attrs...)
}

// logMalformed logs a malformed TokenReview, rate-limited as the refusals are: anyone who
// can reach the port can send garbage. The next line logged says how many were left out.
func (s *Server) logMalformed(remote string, err error) {
	if !s.malformed.Allow() {
		s.unloggedMalformed.Add(1)
		if s.metrics != nil {
			s.metrics.DecisionLogSuppressed.WithLabelValues(resultBadRequest).Inc()
		}
		return
	}
	attrs := []slog.Attr{slog.String("remote", remote), slog.String("err", err.Error())}
	if n := s.unloggedMalformed.Swap(0); n > 0 {
		attrs = append(attrs, slog.Int64("suppressed", n))
	}
	s.log.LogAttrs(context.Background(), slog.LevelWarn, "malformed TokenReview", attrs...)
}

// groupList logs a user's groups: [a b] in text, as fmt would print them but without its
// reflection, and a list in JSON.
type groupList []string

func (g groupList) MarshalText() ([]byte, error) {
	b := append(make([]byte, 0, 64), '[')
	for i, name := range g {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, name...)
	}
	return append(b, ']'), nil
}

func (g groupList) MarshalJSON() ([]byte, error) { return json.Marshal([]string(g)) }
