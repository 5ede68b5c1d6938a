// Package service assembles the webhook from a validated configuration: the issuers, the
// authenticator with its cache, the identity mapping, the metrics and the HTTPS server.
package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/oidc-authenticator/oidc-authenticator/mapping"
	"github.com/oidc-authenticator/oidc-authenticator/webhook"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/metrics"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/pki"
)

// Options carry what the command line adds to the configuration file.
type Options struct {
	Logger *slog.Logger
	// Issuer tunes every issuer (tests shorten intervals); Logger and Observer are set here.
	Issuer issuer.Options
	// Kubeconfig reaches the Kubernetes API for mapping.configMap; "" means the pod's
	// service account.
	Kubeconfig string
	// APIServerHost (host:port), when set, is where the Kubernetes API is reached instead of
	// the kubeconfig's server or the kubernetes Service.
	APIServerHost string
	// Profiling serves Go's profiles under /debug/pprof/.
	Profiling bool
	// Version and Revision label build_info.
	Version, Revision string
	// ShutdownDelay bounds the hand-over to a successor on SIGTERM (webhook.Options).
	ShutdownDelay time.Duration
	// ListenWait bounds how long the HTTPS listener waits for the server to be ready before
	// it opens anyway; 0 opens it at once. A successor must not take connections (the kernel
	// spreads them over every listener on the address) before it can judge tokens.
	ListenWait time.Duration
	// ConfigFile, when set, is the file the configuration came from: Run watches it and
	// applies each new valid version without a restart (reload.go).
	ConfigFile string
	// ConfigPollInterval is how often ConfigFile is read; 0 means DefaultConfigPollInterval.
	ConfigPollInterval time.Duration
	// Address, when set, overrides server.address in every version of the file (--address).
	Address string
	// KeepState keeps what a run learned (issuers' discovery documents and keys, the accepted
	// identity mapping) in server.stateDir/cache for the next run, and starts from it.
	KeepState bool
}

// Service is a configured, not yet running webhook.
type Service struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics.Metrics
	auth    *authn.Authenticator
	mapping *mapping.Store // nil without a mapping source
	source  mapping.Source
	// listening is set once the TokenReview listener is open.
	listening atomic.Bool

	// cfg is the configuration the service started with: what needs a restart is read from it.
	cfg *config.Configuration
	// mu serialises reconfigurations; current is the configuration in force (its settings
	// that need a restart as in cfg), issuers its issuers.
	mu      sync.Mutex
	current *config.Configuration
	issuers atomic.Pointer[issuerSet]
	// runCtx is the context issuers run under once StartIssuers was called; wg counts them.
	runCtx context.Context
	wg     sync.WaitGroup
	reload reloadState
}

// New builds the service; it fetches nothing and listens on nothing yet.
func New(cfg *config.Configuration, opts Options) (*Service, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, current: cfg, opts: opts, log: opts.Logger, metrics: metrics.New()}
	s.metrics.SetBuildInfo(nonEmptyOr(opts.Version, "unknown"), nonEmptyOr(opts.Revision, "unknown"))
	s.metrics.Preinitialize(webhook.KnownResults())
	s.registerReloadMetrics()
	set, err := s.buildIssuers(cfg, nil)
	if err != nil {
		return nil, err
	}
	for _, url := range set.urls() {
		s.metrics.PreinitializeIssuer(url)
	}
	store, source, err := s.newMapping(cfg.Mapping, set.urls(), opts.Kubeconfig, opts.APIServerHost)
	if err != nil {
		return nil, err
	}
	var mapper authn.Mapper
	if store != nil {
		s.mapping, s.source, mapper = store, source, store
	}
	auth, err := authn.New(set.verifiers(), mapper, s.authOptions(cfg, set))
	if err != nil {
		return nil, err
	}
	s.auth = auth
	s.issuers.Store(set)
	s.initVersion(cfg)
	return s, nil
}

// authOptions are the authenticator's settings under cfg.
func (s *Service) authOptions(cfg *config.Configuration, set *issuerSet) authn.Options {
	return authn.Options{
		CacheTTL:        cfg.Cache.TTL.Duration,
		CacheMaxEntries: *cfg.Cache.MaxEntries,
		CacheMaxBytes:   cfg.Cache.MaxBytes.Value(),
		MaxInFlight:     *cfg.Server.MaxInFlightVerifications,
		Observer:        s.metrics,
		UserValidators:  set.userValidators(),
	}
}

// Authenticator is the service's token authenticator.
func (s *Service) Authenticator() *authn.Authenticator { return s.auth }

// Issuers are the configured issuers.
func (s *Service) Issuers() []*issuer.Issuer { return s.issuers.Load().list() }

// StartIssuers discovers every issuer in the background; each retries until ctx ends. Issuers
// a reconfiguration adds later run under ctx too. The returned function waits for all of them.
func (s *Service) StartIssuers(ctx context.Context) (wait func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runCtx = ctx
	for _, m := range s.issuers.Load().all {
		s.start(m)
	}
	return s.wg.Wait
}

// Metrics are the service's metrics.
func (s *Service) Metrics() *metrics.Metrics { return s.metrics }

// Run serves TokenReviews until ctx ends, then hands over to a successor, drains in-flight
// requests and returns. The metrics and probes listener opens first; the HTTPS listener opens
// once the server is ready (or after ListenWait).
func (s *Service) Run(ctx context.Context) error {
	tlsConfig, err := s.tlsConfig()
	if err != nil {
		return err
	}
	srv, err := webhook.New(webhook.Options{
		Authenticator:     s.auth,
		Metrics:           s.metrics,
		Logger:            s.log,
		Readiness:         s.readinessWithListener,
		TLS:               tlsConfig,
		RequireClientCert: tlsConfig.ClientCAs != nil,
		Profiling:         s.opts.Profiling,
		ShutdownDelay:     s.opts.ShutdownDelay,
	})
	if err != nil {
		return err
	}
	bg, stop := context.WithCancel(ctx)
	defer stop()
	probesDone := make(chan error, 1)
	probesCtx, stopProbes := context.WithCancel(context.Background())
	defer stopProbes()
	if addr := *s.cfg.Server.MetricsAddress; addr != "" {
		// SO_REUSEPORT here too, so that a successor on the same node can open its own.
		pln, err := webhook.Listen(ctx, addr)
		if err != nil {
			return fmt.Errorf("server.metricsAddress: %w", err)
		}
		go func() { probesDone <- srv.ServeProbes(probesCtx, pln) }()
	} else {
		probesDone <- nil
	}
	waitIssuers := s.StartIssuers(bg)
	_, waitMapping := s.StartMapping(bg)
	waitWatch := s.WatchConfig(bg)
	defer func() {
		stop()
		waitWatch() // no reconfiguration starts an issuer after this
		waitIssuers()
		waitMapping()
	}()
	s.awaitReady(ctx)
	if ctx.Err() != nil { // stopped before it listened: nothing to hand over
		stopProbes()
		return <-probesDone
	}
	ln, err := webhook.Listen(ctx, s.cfg.Server.Address)
	if err != nil {
		stopProbes()
		<-probesDone
		return err
	}
	s.listening.Store(true)
	err = srv.Serve(ctx, ln)
	stopProbes()
	if perr := <-probesDone; err == nil {
		err = perr
	}
	return err
}

// awaitReady waits until the server is ready to judge tokens, ListenWait passes or ctx ends.
func (s *Service) awaitReady(ctx context.Context) {
	if s.opts.ListenWait <= 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, s.opts.ListenWait)
	defer cancel()
	if err := wait.PollUntilContextCancel(wctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		return ready(s.readiness()), nil
	}); err != nil && ctx.Err() == nil {
		s.log.Warn("not ready yet; opening the TokenReview listener anyway", "waited", s.opts.ListenWait.String())
	}
}

// ready reports whether every check that counts passed.
func ready(results []webhook.CheckResult) bool {
	for _, r := range results {
		if !r.OK && !r.Informational {
			return false
		}
	}
	return true
}

// readinessWithListener is readiness plus whether the TokenReview listener is open: a
// probe on the metrics listener must not call the pod ready before it takes reviews.
func (s *Service) readinessWithListener() []webhook.CheckResult {
	r := webhook.CheckResult{Name: "listener " + s.cfg.Server.Address, OK: s.listening.Load(), Detail: "accepting TokenReviews"}
	if !r.OK {
		r.Detail = "not open yet: waiting for the server to be ready"
	}
	return append(s.readiness(), r)
}

func (s *Service) tlsConfig() (*tls.Config, error) {
	srv := s.cfg.Server
	if s.cfg.GeneratesServingCert() {
		host, _, _ := net.SplitHostPort(srv.Address)
		res, err := pki.Ensure(pki.Files{Dir: srv.StateDir}, pki.Options{Hostnames: nonEmpty(host)})
		if err != nil {
			return nil, fmt.Errorf("prepare the serving certificate in %s: %w", srv.StateDir, err)
		}
		if len(res.Created) > 0 {
			s.log.Info("generated certificates; run `oidc-authenticator init` to get the kube-apiserver kubeconfig", "created", res.Created)
		}
	}
	reloader, err := pki.NewCertReloader(srv.CertFile, srv.KeyFile, func(err error) {
		s.log.Error("reloading the serving certificate failed; still serving the previous one", "err", err)
	})
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: reloader.GetCertificate}
	expiry := map[string]func() (time.Time, bool){"serving": reloader.NotAfter}
	if caFile := s.cfg.ClientCAFile(); caFile != "" {
		pool, err := pki.LoadCertPool(caFile)
		if err != nil {
			if srv.ClientCAFile == "" {
				return nil, fmt.Errorf("server.clientAuth is required (the default) but the client CA is missing: %w; "+
					"run `oidc-authenticator init --state-dir %s`, set server.clientCAFile, or set server.clientAuth: none to let anyone who reaches the port ask", err, srv.StateDir)
			}
			return nil, err
		}
		cfg.ClientCAs = pool
		expiry["client_ca"] = pki.FileNotAfter(caFile)
		s.log.Info("TokenReviews require a client certificate", "clientCA", caFile)
	} else {
		s.log.Warn("server.clientAuth is none: TokenReviews are answered without a client certificate, to anyone who reaches the port; require one unless the port is reachable only by kube-apiserver", "address", srv.Address)
	}
	if client := (pki.Files{Dir: srv.StateDir}).ClientCert(); fileExists(client) {
		expiry["client"] = pki.FileNotAfter(client)
	}
	s.metrics.RegisterCertificateExpiry(expiry)
	return cfg, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func nonEmptyOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func nonEmpty(s string) []string {
	if s == "" || s == "0.0.0.0" || s == "::" {
		return nil
	}
	return []string{s}
}

// readiness reports the configuration and each issuer: the server is ready when at least
// one issuer can verify tokens.
func (s *Service) readiness() []webhook.CheckResult {
	set := s.issuers.Load()
	results := []webhook.CheckResult{s.configReadiness(len(set.all))}
	anyReady := false
	for _, is := range set.list() {
		st := is.Status()
		anyReady = anyReady || st.Ready
		results = append(results, webhook.CheckResult{Name: "issuer " + st.URL, OK: st.Ready, Detail: st.Message, Informational: true})
	}
	detail := "at least one issuer can verify tokens"
	if !anyReady {
		detail = "no issuer can verify tokens yet"
	}
	results = append(results, webhook.CheckResult{Name: "issuers", OK: anyReady, Detail: detail})
	if r, ok := s.mappingReadiness(); ok {
		results = append(results, r)
	}
	return results
}
