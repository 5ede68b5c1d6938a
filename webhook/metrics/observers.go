package metrics

import "time"

// These methods let the authenticator and the issuers report to Prometheus without
// importing it.

// CacheLookup counts a verified-token cache lookup.
func (m *Metrics) CacheLookup(hit bool) {
	if hit {
		m.CacheRequests.WithLabelValues("hit").Inc()
		return
	}
	m.CacheRequests.WithLabelValues("miss").Inc()
}

// DiscoveryFetched counts a discovery document fetch.
func (m *Metrics) DiscoveryFetched(issuer string, err error) {
	m.DiscoveryFetches.WithLabelValues(issuer, outcome(err)).Inc()
}

// KeysFetched counts a JWKS fetch, and notes when one succeeded.
func (m *Metrics) KeysFetched(issuer string, _ int, err error) {
	m.JWKSFetches.WithLabelValues(issuer, outcome(err)).Inc()
	if err == nil {
		m.JWKSLastSuccess.WithLabelValues(issuer).SetToCurrentTime()
	}
}

// IssuerReady records whether an issuer can verify tokens.
func (m *Metrics) IssuerReady(issuer string, ready bool) {
	v := 0.0
	if ready {
		v = 1
	}
	m.IssuerReadiness.WithLabelValues(issuer).Set(v)
}

// MappingReloaded observes how long an identity mapping reload took, by result.
func (m *Metrics) MappingReloaded(result string, took time.Duration) {
	m.MappingReloadDuration.WithLabelValues(result).Observe(took.Seconds())
}

// MappingEntries records the number of entries of one kind in the mapping in force.
func (m *Metrics) MappingEntries(kind string, n int) {
	m.MappingEntryCount.WithLabelValues(kind).Set(float64(n))
}

func outcome(err error) string {
	if err != nil {
		return "failure"
	}
	return "success"
}
