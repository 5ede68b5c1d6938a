package service_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/service"
)

var metricName = regexp.MustCompile(`\b(?:oidc_authenticator|process|go)_[a-z0-9_]+\b`)

// Rule: every metric the example alert rules (docs/alerts.yaml) and the Grafana dashboard
// (docs/grafana-dashboard.json) query is one the server serves on its metrics listener, so
// the examples cannot drift from the code. Both files must parse, and every rule must have a
// name, an expression and a severity.
func TestAlertsAndDashboardUseServedMetrics(t *testing.T) {
	o := startOps(t, "", service.Options{Version: "v1", Revision: "r"})
	o.waitReady(t)
	_, body := o.getMetrics(t, "/metrics")
	served := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`).FindAllStringSubmatch(body, -1) {
		served[m[1]] = true
		if m[2] == "histogram" || m[2] == "summary" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				served[m[1]+suffix] = true
			}
		}
	}
	check := func(file, where, expr string) {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s %s: the expression names no metric of the server: %s", file, where, expr)
		}
		for _, name := range names {
			if !served[name] {
				t.Errorf("%s %s: %s is not served by the server", file, where, name)
			}
		}
	}

	raw, err := os.ReadFile("../../docs/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert  string            `json:"alert"`
				Expr   string            `json:"expr"`
				For    string            `json:"for"`
				Labels map[string]string `json:"labels"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("docs/alerts.yaml: %v", err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Labels["severity"] == "" {
				t.Errorf("docs/alerts.yaml: a rule without alert name or severity: %+v", r)
			}
			check("docs/alerts.yaml", r.Alert, r.Expr)
		}
	}
	if n < 6 {
		t.Fatalf("docs/alerts.yaml: %d rules; want those for issuer not ready, keys stale, mapping and config refused, certificate expiring, 429s", n)
	}

	raw, err = os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	queries := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					queries++
					check("docs/grafana-dashboard.json", path+"."+k, s)
					continue
				}
				walk(path+"."+k, x)
			}
		case []any:
			for _, x := range v {
				walk(path+"[]", x)
			}
		}
	}
	walk("", dash)
	if queries < 10 {
		t.Fatalf("docs/grafana-dashboard.json: only %d queries found", queries)
	}
	if !strings.Contains(string(raw), `"type": "prometheus"`) {
		t.Error("docs/grafana-dashboard.json does not use a Prometheus data source")
	}
}
