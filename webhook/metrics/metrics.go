// Package metrics defines the server's Prometheus metrics. A Metrics value owns its registry,
// so tests and several servers in one process never share state.
package metrics

import (
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "oidc_authenticator"

// Metrics holds every collector the server updates.
type Metrics struct {
	registry *prometheus.Registry

	// Requests counts TokenReviews by result (allowed, denied, undecided, bad_request) and reason.
	Requests *prometheus.CounterVec
	// Duration observes TokenReview latency by result.
	Duration *prometheus.HistogramVec
	// CacheRequests counts verified-token cache lookups by result (hit, miss).
	CacheRequests *prometheus.CounterVec
	// JWKSFetches counts key set fetches by issuer and result (success, failure).
	JWKSFetches *prometheus.CounterVec
	// DiscoveryFetches counts discovery document fetches by issuer and result.
	DiscoveryFetches *prometheus.CounterVec
	// JWKSLastSuccess is when an issuer's keys were last fetched successfully.
	JWKSLastSuccess *prometheus.GaugeVec
	// IssuerReadiness is 1 when an issuer's discovery succeeded and its keys are known.
	IssuerReadiness *prometheus.GaugeVec
	// MappingReloads counts identity mapping reloads by result (success, rejected, deleted).
	MappingReloads *prometheus.CounterVec
	// BuildInfo is 1, labelled with the binary's version, git revision and Go version.
	BuildInfo *prometheus.GaugeVec
	// MappingReloadDuration observes how long parsing and checking a mapping version took.
	MappingReloadDuration *prometheus.HistogramVec
	// MappingEntryCount is the number of entries of the mapping in force, by kind.
	MappingEntryCount *prometheus.GaugeVec
	// DecisionLogSuppressed counts the decision log lines left out by the rate limit on
	// refused tokens and malformed requests, by result (denied, undecided, bad_request).
	DecisionLogSuppressed *prometheus.CounterVec
}

// New registers the server's metrics, plus the Go runtime and process collectors, in a
// registry of their own.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tokenreview_requests_total",
			Help: "TokenReview requests by result and reason.",
		}, []string{"result", "reason"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "tokenreview_duration_seconds",
			Help:    "Time to answer a TokenReview, by result.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		CacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "token_cache_requests_total",
			Help: "Verified-token cache lookups by result (hit, miss).",
		}, []string{"result"}),
		JWKSFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "jwks_fetches_total",
			Help: "JSON Web Key Set fetches by issuer and result.",
		}, []string{"issuer", "result"}),
		DiscoveryFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "discovery_fetches_total",
			Help: "OpenID discovery document fetches by issuer and result.",
		}, []string{"issuer", "result"}),
		JWKSLastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "jwks_last_success_timestamp_seconds",
			Help: "Unix time of the last successful JSON Web Key Set fetch, by issuer: a stale value while jwks_fetches_total{result=\"failure\"} grows means the issuer's keys cannot be refreshed.",
		}, []string{"issuer"}),
		IssuerReadiness: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "issuer_ready",
			Help: "1 when the issuer's discovery document and keys are loaded, else 0.",
		}, []string{"issuer"}),
		MappingReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "mapping_reloads_total",
			Help: "Identity mapping reloads by result (success, rejected, deleted).",
		}, []string{"result"}),
		MappingReloadDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "mapping_reload_duration_seconds",
			Help:    "Time to parse and check an identity mapping version, by result (success, rejected, deleted).",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		MappingEntryCount: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "mapping_entries",
			Help: "Entries of the identity mapping in force, by kind (user_subject, user_email, user_expression, group, group_expression).",
		}, []string{"kind"}),
		DecisionLogSuppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "decision_log_suppressed_total",
			Help: "Decision log lines of refused tokens left out by the log's rate limit, by result (denied, undecided, bad_request).",
		}, []string{"result"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "build_info",
			Help: "1, labelled with the version, git revision and Go version of the binary.",
		}, []string{"version", "revision", "goversion"}),
	}
	r.MustRegister(m.Requests, m.Duration, m.CacheRequests, m.JWKSFetches, m.JWKSLastSuccess, m.DiscoveryFetches, m.IssuerReadiness, m.MappingReloads,
		m.MappingReloadDuration, m.MappingEntryCount, m.DecisionLogSuppressed, m.BuildInfo)
	for _, result := range []string{"hit", "miss"} {
		m.CacheRequests.WithLabelValues(result)
	}
	for _, result := range []string{"success", "rejected", "deleted"} {
		m.MappingReloads.WithLabelValues(result)
	}
	for _, result := range []string{"denied", "undecided", "bad_request"} {
		m.DecisionLogSuppressed.WithLabelValues(result)
	}
	return m
}

// SetBuildInfo sets build_info for the binary's version and git revision.
func (m *Metrics) SetBuildInfo(version, revision string) {
	m.BuildInfo.WithLabelValues(version, revision, runtime.Version()).Set(1)
}

// Preinitialize makes the series of TokenReview results and reasons known in advance exist
// from the start, at 0, so that rate() and alerts see the first one. reasons maps a result
// to its reasons; "" is a result without a reason.
func (m *Metrics) Preinitialize(reasons map[string][]string) {
	for result, rs := range reasons {
		m.Duration.WithLabelValues(result)
		for _, reason := range rs {
			m.Requests.WithLabelValues(result, reason)
		}
	}
}

// PreinitializeIssuer makes an issuer's fetch counters exist from the start, at 0.
func (m *Metrics) PreinitializeIssuer(issuer string) {
	for _, result := range []string{"success", "failure"} {
		m.JWKSFetches.WithLabelValues(issuer, result)
		m.DiscoveryFetches.WithLabelValues(issuer, result)
	}
	m.IssuerReadiness.WithLabelValues(issuer)
}

// Register adds more collectors to the registry.
func (m *Metrics) Register(c ...prometheus.Collector) { m.registry.MustRegister(c...) }

// Gatherer exposes the registry, for tests.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.registry }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}
