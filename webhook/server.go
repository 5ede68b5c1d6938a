// Package webhook serves kube-apiserver's TokenReview webhook over HTTPS: POST /authenticate,
// and /healthz, /readyz and /metrics for the people and probes that watch it.
package webhook

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/metrics"
)

// ShutdownTimeout bounds how long in-flight requests may take to finish after SIGTERM.
const ShutdownTimeout = 25 * time.Second

// Authenticator is what the server asks about each token.
type Authenticator interface {
	Authenticate(ctx context.Context, raw string) (authn.Result, error)
}

// Options configure a Server.
type Options struct {
	Authenticator Authenticator
	Metrics       *metrics.Metrics
	Logger        *slog.Logger
	// Readiness lists the checks /readyz reports.
	Readiness func() []CheckResult
	// TLS serves the listener; it must be set.
	TLS *tls.Config
	// RequireClientCert refuses /authenticate to callers without a verified client cert.
	// TLS.ClientCAs must then be set.
	RequireClientCert bool
	// Profiling serves Go's profiles under /debug/pprof/ (off by default, as in kube-apiserver
	// with --profiling=false): they reveal no token, but cost CPU while they are taken.
	Profiling bool
}

// Server is the HTTPS webhook.
type Server struct {
	echo              *echo.Echo
	auth              Authenticator
	metrics           *metrics.Metrics
	log               *slog.Logger
	readiness         func() []CheckResult
	tls               *tls.Config
	requireClientCert bool
	// denied holds the clean-deny answer, by TokenReview apiVersion.
	denied map[string][]byte
	// undecided holds undecided answers, by apiVersion and reason, made on first use.
	undecided sync.Map
	buffers   sync.Pool // of *bytes.Buffer, for request bodies and answers
	// refusals limits the log lines of refused tokens; unlogged counts those left out.
	refusals *rate.Limiter
	unlogged atomic.Int64
}

// New builds the server and its routes.
func New(opts Options) (*Server, error) {
	if opts.Authenticator == nil || opts.TLS == nil {
		return nil, errors.New("webhook: an authenticator and a TLS configuration are required")
	}
	if opts.RequireClientCert && opts.TLS.ClientCAs == nil {
		return nil, errors.New("webhook: requiring client certificates needs a client CA")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		echo: echo.New(), auth: opts.Authenticator, metrics: opts.Metrics, log: opts.Logger,
		readiness: opts.Readiness, tls: opts.TLS.Clone(), requireClientCert: opts.RequireClientCert,
		refusals: rate.NewLimiter(refusalLogRate, refusalLogBurst),
	}
	if s.requireClientCert {
		// Probes and scrapers come without a client certificate; /authenticate checks for one.
		s.tls.ClientAuth = tls.VerifyClientCertIfGiven
	}
	s.tls.MinVersion = max(s.tls.MinVersion, tls.VersionTLS12)
	s.denied = make(map[string][]byte, 2)
	for _, v := range []string{versionV1, versionV1beta1} {
		b, err := json.Marshal(reviewResponse(v, authenticationv1.TokenReviewStatus{}))
		if err != nil {
			return nil, fmt.Errorf("webhook: encode the denial: %w", err)
		}
		s.denied[v] = b
	}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("handler panic", "path", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	e.POST("/authenticate", s.authenticate)
	e.GET("/healthz", s.healthz)
	e.GET("/livez", s.healthz)
	e.GET("/readyz", s.readyz)
	if s.metrics != nil {
		e.GET("/metrics", echo.WrapHandler(s.metrics.Handler()))
	}
	if opts.Profiling {
		e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
		e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
		e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	}
	return s, nil
}

// Handler exposes the routes, for tests that bring their own listener.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve answers on ln with TLS until ctx ends, then stops accepting, lets in-flight
// requests finish (up to ShutdownTimeout) and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.echo,
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      45 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		// HTTP/1.1 with keep-alive only: for kube-apiserver's small TokenReview requests it
		// costs a third of HTTP/2's server CPU per request (docs/performance.md), and it leaves
		// out HTTP/2's attack surface (rapid reset, CONTINUATION floods).
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	s.log.Info("serving TokenReviews", "address", ln.Addr().String(), "clientCertRequired", s.requireClientCert)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing in-flight requests", "timeout", ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
