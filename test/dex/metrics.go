package dex

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Requests returns how many HTTP requests Dex has answered on the endpoint handler (its path
// under the issuer, e.g. "/token", "/keys", "/.well-known/openid-configuration"), whatever
// their method and status, as Dex counts them in http_requests_total on its telemetry
// listener. Counting "/token" is how tests see how many grants a client asked for.
func (s *Server) Requests(ctx context.Context, handler string) (int, error) {
	counts, err := s.requestCounts(ctx)
	if err != nil {
		return 0, err
	}
	return counts[handler], nil
}

// AllRequests returns how many HTTP requests Dex has answered on all its endpoints together.
func (s *Server) AllRequests(ctx context.Context) (int, error) {
	counts, err := s.requestCounts(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	return total, nil
}

// requestCounts reads http_requests_total from Dex's /metrics, summed per handler label.
func (s *Server) requestCounts(ctx context.Context) (map[string]int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.TelemetryURL+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("cannot build the request for Dex's metrics: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot fetch Dex's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("Dex's metrics answered HTTP %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("cannot parse Dex's metrics: %w", err)
	}
	counts := map[string]int{}
	family, ok := families["http_requests_total"]
	if !ok { // no request answered yet
		return counts, nil
	}
	for _, m := range family.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "handler" {
				counts[l.GetValue()] += int(m.GetCounter().GetValue())
			}
		}
	}
	return counts, nil
}
