// Package service assembles the webhook from a validated configuration: the issuers, the
// authenticator with its cache, the identity mapping, the metrics and the HTTPS server.
package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

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
	// Profiling serves Go's profiles under /debug/pprof/.
	Profiling bool
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

	// mu serialises reconfigurations; cfg is the configuration in force (its settings that
	// need a restart as the process started with them), issuers its issuers.
	mu      sync.Mutex
	cfg     *config.Configuration
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
	s := &Service{cfg: cfg, opts: opts, log: opts.Logger, metrics: metrics.New()}
	s.registerReloadMetrics()
	set, err := s.buildIssuers(cfg, nil)
	if err != nil {
		return nil, err
	}
	store, source, err := s.newMapping(cfg.Mapping, set.urls(), opts.Kubeconfig)
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

// Run serves TokenReviews until ctx ends, then drains in-flight requests and returns.
func (s *Service) Run(ctx context.Context) error {
	tlsConfig, err := s.tlsConfig()
	if err != nil {
		return err
	}
	srv, err := webhook.New(webhook.Options{
		Authenticator:     s.auth,
		Metrics:           s.metrics,
		Logger:            s.log,
		Readiness:         s.readiness,
		TLS:               tlsConfig,
		RequireClientCert: s.cfg.Server.ClientCAFile != "",
		Profiling:         s.opts.Profiling,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Server.Address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Server.Address, err)
	}
	bg, stop := context.WithCancel(ctx)
	waitIssuers := s.StartIssuers(bg)
	_, waitMapping := s.StartMapping(bg)
	waitWatch := s.WatchConfig(bg)
	err = srv.Serve(ctx, ln)
	stop()
	waitWatch()
	waitIssuers()
	waitMapping()
	return err
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
	if srv.ClientCAFile != "" {
		pool, err := pki.LoadCertPool(srv.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
	}
	return cfg, nil
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
