package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// certificateExpiry reports when each certificate expires, reading it at every scrape, so
// that a renewed certificate shows at once. A certificate that cannot be read is left out
// (and its absence is what an alert on absent() catches).
type certificateExpiry struct {
	desc  *prometheus.Desc
	certs map[string]func() (time.Time, bool)
}

// RegisterCertificateExpiry exports certificate_expiry_timestamp_seconds{cert}: for each name,
// the NotAfter its function returns when it returns true.
func (m *Metrics) RegisterCertificateExpiry(certs map[string]func() (time.Time, bool)) {
	m.registry.MustRegister(&certificateExpiry{
		desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "certificate_expiry_timestamp_seconds"),
			"Unix time at which the certificate expires, by certificate (serving: the webhook's serving certificate as served now; client_ca: the CA that kube-apiserver's client certificate must chain to; client: kube-apiserver's client certificate in the state directory).",
			[]string{"cert"}, nil),
		certs: certs,
	})
}

func (c *certificateExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *certificateExpiry) Collect(ch chan<- prometheus.Metric) {
	for name, notAfter := range c.certs {
		if t, ok := notAfter(); ok {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(t.Unix()), name)
		}
	}
}
