package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oidc-authenticator/oidc-authenticator/webhook"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
)

// The configuration file is read every ConfigPollInterval, through any symlink (a mounted
// ConfigMap swaps its ..data link atomically), and a version whose content changed is applied
// without a restart, as kube-apiserver reloads its --authentication-config:
//
//   - It is validated whole first, as at start. An invalid version is refused: the version in
//     force keeps serving, and the refusal shows in the log (ERROR, naming the fields), the
//     metrics and /readyz?verbose. An invalid content is only refused once it is seen on two
//     polls in a row, so that a file caught half-written is not reported.
//   - jwt[]: an issuer whose entry did not change keeps running, with its keys and cached
//     tokens. An added issuer is discovered in the background while the others serve. A
//     removed issuer is refused at once, its cached tokens with it. A changed entry applies
//     to the next review; the cache never serves what the old entry verified, and the new
//     one starts from the old one's keys while it discovers the issuer again.
//   - cache and server.maxInFlightVerifications change in place.
//   - Every other server and mapping setting (listen address, state directory, TLS files, the
//     mapping source and requireMatch) needs a restart: a change is logged (WARN, naming the
//     fields) and shown in /readyz?verbose, and the running value stays.

// DefaultConfigPollInterval is how often the configuration file is read.
const DefaultConfigPollInterval = time.Second

// maxConfigBytes bounds what is read of the configuration file.
const maxConfigBytes = 4 << 20

// reloadState is what the reloads did, for /readyz?verbose and the metrics. Under Service.mu.
type reloadState struct {
	version string // the version in force; "" until the file was read
	since   time.Time
	refused *configRefusal
	restart []string // settings whose change waits for a restart
	// seen is the content last acted on; suspect an invalid content seen once, to look at
	// again before refusing it.
	seen, suspect [sha256.Size]byte

	reloads *prometheus.CounterVec
	last    *prometheus.GaugeVec
}

type configRefusal struct {
	version string
	at      time.Time
	err     error
}

func (s *Service) registerReloadMetrics() {
	s.reload.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "oidc_authenticator", Name: "config_automatic_reloads_total",
		Help: "Automatic reloads of the configuration file by status (success, failure), as kube-apiserver's authentication_config_controller_automatic_reloads_total.",
	}, []string{"status"})
	s.reload.last = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "oidc_authenticator", Name: "config_automatic_reload_last_timestamp_seconds",
		Help: "Unix time of the last automatic reload of the configuration file, by status (success, failure).",
	}, []string{"status"})
	for _, status := range []string{"success", "failure"} {
		s.reload.reloads.WithLabelValues(status)
	}
	s.metrics.Register(s.reload.reloads, s.reload.last)
}

// initVersion names the version in force when the file still holds the configuration the
// service was built from; otherwise the first poll applies the file as it is now.
func (s *Service) initVersion(cfg *config.Configuration) {
	s.reload.since = time.Now()
	if s.opts.ConfigFile == "" {
		return
	}
	data, err := readConfigFile(s.opts.ConfigFile)
	if err != nil {
		return
	}
	now, err := s.parseConfig(data)
	if err != nil {
		return
	}
	a, errA := json.Marshal(cfg)
	b, errB := json.Marshal(now)
	if errA == nil && errB == nil && string(a) == string(b) {
		s.reload.seen = sha256.Sum256(data)
		s.reload.version = versionOf(s.reload.seen)
	}
}

func versionOf(sum [sha256.Size]byte) string { return hex.EncodeToString(sum[:6]) }

func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read configuration %s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("configuration %s is larger than %d bytes", path, maxConfigBytes)
	}
	return data, nil
}

// parseConfig validates a version of the file whole, as at start, with the command line's
// overrides.
func (s *Service) parseConfig(data []byte) (*config.Configuration, error) {
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, err
	}
	if s.opts.Address != "" {
		cfg.Server.Address = s.opts.Address
		if errs := cfg.Validate(); len(errs) > 0 {
			return nil, errs.ToAggregate()
		}
	}
	return cfg, nil
}

// WatchConfig polls Options.ConfigFile until ctx ends and applies each new version; wait
// waits for it to stop. Without a ConfigFile it does nothing.
func (s *Service) WatchConfig(ctx context.Context) (wait func()) {
	if s.opts.ConfigFile == "" {
		return func() {}
	}
	interval := s.opts.ConfigPollInterval
	if interval <= 0 {
		interval = DefaultConfigPollInterval
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = s.checkConfig(true)
			}
		}
	}()
	return func() { <-done }
}

// ReloadConfig reads Options.ConfigFile once and applies it if its content changed since the
// last look. It returns the refusal of an invalid version (also reported as the watcher
// reports it), nil when the version was applied or nothing changed.
func (s *Service) ReloadConfig() error { return s.checkConfig(false) }

func (s *Service) checkConfig(settle bool) error {
	data, err := readConfigFile(s.opts.ConfigFile)
	sum := sha256.Sum256(data)
	if err != nil {
		sum = sha256.Sum256([]byte("unreadable\x00" + err.Error()))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sum == s.reload.seen {
		return nil
	}
	var cfg *config.Configuration
	if err == nil {
		cfg, err = s.parseConfig(data)
	}
	if err != nil && settle && sum != s.reload.suspect {
		s.reload.suspect = sum // perhaps caught half-written: look again at the next poll
		return nil
	}
	s.reload.seen, s.reload.suspect = sum, [sha256.Size]byte{}
	version := versionOf(sum)
	if err == nil {
		err = s.apply(version, cfg)
	}
	if err != nil {
		s.refuse(version, err)
		return err
	}
	return nil
}

// apply makes cfg the configuration in force. Callers hold s.mu. Nothing changes when it
// fails.
func (s *Service) apply(version string, cfg *config.Configuration) error {
	running := s.current
	restart := restartFields(running, cfg)
	// What needs a restart stays as the process started with it.
	merged := *cfg
	merged.Server = running.Server
	merged.Server.MaxInFlightVerifications = cfg.Server.MaxInFlightVerifications
	merged.Mapping = running.Mapping

	old := s.issuers.Load()
	set, err := s.buildIssuers(&merged, old)
	if err != nil {
		return err
	}
	if err := s.auth.Update(set.verifiers(), s.authOptions(&merged, set)); err != nil {
		return err
	}
	s.issuers.Store(set)
	s.current = &merged
	var added, changed, removed []string
	for _, m := range set.all {
		if old.holds(m) {
			continue
		}
		if old.find(m.is.URL()) != nil {
			changed = append(changed, m.is.URL())
		} else {
			added = append(added, m.is.URL())
			s.metrics.PreinitializeIssuer(m.is.URL())
		}
		s.start(m)
	}
	for _, m := range old.all {
		if set.holds(m) {
			continue
		}
		s.retire(m)
		if set.find(m.is.URL()) == nil {
			removed = append(removed, m.is.URL())
		}
	}
	if s.mapping != nil {
		s.mapping.SetIssuers(set.urls())
	}

	s.reload.version, s.reload.since, s.reload.refused, s.reload.restart = version, time.Now(), nil, restart
	s.reload.reloads.WithLabelValues("success").Inc()
	s.reload.last.WithLabelValues("success").SetToCurrentTime()
	s.log.Info("configuration reloaded", "file", s.opts.ConfigFile, "version", version,
		"issuers_added", added, "issuers_changed", changed, "issuers_removed", removed)
	if len(restart) > 0 {
		s.log.Warn("configuration settings changed that take effect only after a restart; the running values stay until then",
			"file", s.opts.ConfigFile, "version", version, "needs_restart", restart)
	}
	return nil
}

// refuse records a version that cannot be applied. Callers hold s.mu.
func (s *Service) refuse(version string, err error) {
	s.reload.refused = &configRefusal{version: version, at: time.Now(), err: err}
	s.reload.reloads.WithLabelValues("failure").Inc()
	s.reload.last.WithLabelValues("failure").SetToCurrentTime()
	inForce := s.reload.version
	if inForce == "" {
		inForce = "(as started)"
	}
	s.log.Error("configuration version refused; the version in force keeps serving",
		"file", s.opts.ConfigFile, "version", version, "in_force", inForce, "err", err)
}

// restartFields names the settings of next that differ from running and need a restart:
// every field of server but maxInFlightVerifications, and every field of mapping.
func restartFields(running, next *config.Configuration) []string {
	var out []string
	diff := func(section string, a, b any, live ...string) {
		am, bm := fields(a), fields(b)
		for _, k := range slices.Sorted(maps.Keys(union(am, bm))) {
			if !slices.Contains(live, k) && am[k] != bm[k] {
				out = append(out, section+"."+k)
			}
		}
	}
	diff("server", running.Server, next.Server, "maxInFlightVerifications")
	diff("mapping", running.Mapping, next.Mapping)
	return out
}

// fields flattens a settings struct into its JSON fields, each value as JSON.
func fields(v any) map[string]string {
	b, _ := json.Marshal(v)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	out := make(map[string]string, len(m))
	for k, raw := range m {
		out[k] = string(raw)
	}
	return out
}

func union(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

// configReadiness is the /readyz?verbose line of the configuration: its version in force, the
// newest refused version and why, and the changes that wait for a restart. It never makes the
// server unready: a refused version leaves the one in force serving.
func (s *Service) configReadiness(issuers int) webhook.CheckResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	if s.reload.version != "" {
		fmt.Fprintf(&b, "version %s in force since %s", s.reload.version, stamp(s.reload.since))
	} else {
		fmt.Fprintf(&b, "the configuration read at start in force since %s", stamp(s.reload.since))
	}
	fmt.Fprintf(&b, " (%d issuers)", issuers)
	if r := s.reload.refused; r != nil {
		fmt.Fprintf(&b, "; version %s refused at %s: %v", r.version, stamp(r.at), r.err)
	}
	if len(s.reload.restart) > 0 {
		fmt.Fprintf(&b, "; changed but waiting for a restart: %s", strings.Join(s.reload.restart, ", "))
	}
	return webhook.CheckResult{Name: "config", OK: true, Detail: b.String()}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
