// Package webhook serves kube-apiserver's TokenReview webhook over HTTPS: POST /authenticate,
// and /healthz, /readyz and /metrics for the people and probes that watch it, which a plain
// HTTP listener of their own (ServeProbes) serves too.
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
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/metrics"
)

// ShutdownTimeout bounds how long in-flight requests may take to finish after SIGTERM.
const ShutdownTimeout = 25 * time.Second

// DefaultShutdownDelay bounds how long the server keeps accepting connections after SIGTERM
// while it waits for a successor to listen on the same address (SO_REUSEPORT): in a surge
// rollout the successor already listens and the wait ends at once; when the pod is only
// deleted, it keeps serving this long in case one comes.
const DefaultShutdownDelay = 10 * time.Second

// successorPoll is how often Serve looks for a successor while it hands over.
const successorPoll = 100 * time.Millisecond

// handoverDrain bounds how long Serve waits, after closing its listener, for the clients to
// close their connections after an answer: a client's spare idle connections may not be used
// again for a long while, and they are closed after this.
const handoverDrain = 2 * time.Second

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
	// ShutdownDelay bounds how long Serve keeps accepting after its context ends, waiting for
	// a successor (see DefaultShutdownDelay); 0 stops accepting at once.
	ShutdownDelay time.Duration
	// Successor reports whether another instance listens on the listener's address; nil
	// means OtherListener.
	Successor func(net.Addr) bool
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
	// malformed limits the log lines of malformed requests; unloggedMalformed counts those
	// left out.
	malformed         *rate.Limiter
	unloggedMalformed atomic.Int64
	shutdownDelay     time.Duration
	successor         func(net.Addr) bool
	// terminating is set once Serve's context has ended: /readyz then fails.
	terminating atomic.Bool
	probes      *echo.Echo
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
		refusals:      rate.NewLimiter(refusalLogRate, refusalLogBurst),
		malformed:     rate.NewLimiter(refusalLogRate, refusalLogBurst),
		shutdownDelay: opts.ShutdownDelay, successor: opts.Successor,
	}
	if s.successor == nil {
		s.successor = OtherListener
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
	e.Use(s.closeWhileTerminating)
	e.POST("/authenticate", s.authenticate)
	e.GET("/healthz", s.healthz)
	e.GET("/livez", s.healthz)
	// Readiness detail names issuers, versions and reasons: only for a caller that presented
	// a verified client certificate (kube-apiserver's, or an operator's issued by the CA).
	e.GET("/readyz", s.readyz(hasVerifiedClientCert))
	if s.metrics != nil {
		e.GET("/metrics", echo.WrapHandler(s.metrics.Handler()))
	}
	s.probes = s.newProbes()
	if opts.Profiling {
		e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
		e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
		e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	}
	return s, nil
}

// Handler exposes the routes, for tests that bring their own listener.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve answers on ln with TLS until ctx ends. Then, with a shutdown delay, it hands over to
// a successor that listens on the same address (Listen sets SO_REUSEPORT; see handOver).
// Last it stops accepting, lets in-flight requests finish (up to ShutdownTimeout) and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var open atomic.Int64 // connections open, for the hand-over
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
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
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
	s.terminating.Store(true)
	if s.shutdownDelay > 0 {
		s.handOver(ln, &open)
		// ServeTLS returns once the listener is closed; the connections it accepted go on.
		if err := <-errc; err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		errc <- nil
	}
	s.log.Info("shutting down: no longer accepting; finishing in-flight requests", "timeout", ShutdownTimeout.String())
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

// handOver moves kube-apiserver's traffic to a successor without a failed request. From now
// on every answer carries "Connection: close" (closeWhileTerminating): the client then opens a
// new connection, which the kernel gives to one of the listeners on the address. The server
// keeps accepting until another instance listens on the address (or for the shutdown delay at
// most, when none comes), then closes its listener and waits (up to handoverDrain) for the
// clients to close their connections after their next answer. Only what is still open after
// that (spare idle connections of the client's pool) is closed by the server.
//
// The server speaks HTTP/1.1 only: it cannot tell an idle keep-alive connection to go away
// (HTTP/2's GOAWAY), and closing one just as the client sends on it would fail that request;
// so it lets the client close each connection after an answer. A connection the kernel queued
// on this listener at the instant it closes is reset: kube-apiserver retries reset
// connections, and with net.ipv4.tcp_migrate_req=1 (Linux 5.14 or later) the kernel moves it
// to the successor instead (docs/operations.md).
func (s *Server) handOver(ln net.Listener, open *atomic.Int64) {
	addr := ln.Addr()
	s.log.Info("shutting down: still accepting, each connection closed after its next answer, until the next instance listens",
		"address", addr.String(), "maxWait", s.shutdownDelay.String())
	ctx, cancel := context.WithTimeout(context.Background(), s.shutdownDelay)
	defer cancel()
	if err := wait.PollUntilContextCancel(ctx, successorPoll, true, func(context.Context) (bool, error) {
		return s.successor(addr), nil
	}); err != nil {
		s.log.Info("no other instance listens on the address; closing the listener", "address", addr.String(), "waited", s.shutdownDelay.String())
	} else {
		s.log.Info("another instance listens on the address; closing the listener", "address", addr.String())
	}
	_ = ln.Close()
	ctx, cancel = context.WithTimeout(context.Background(), handoverDrain)
	defer cancel()
	if err := wait.PollUntilContextCancel(ctx, successorPoll, true, func(context.Context) (bool, error) {
		return open.Load() == 0, nil
	}); err != nil {
		s.log.Info("closing the connections still open", "connections", open.Load())
	}
}

// closeWhileTerminating asks the client to close its connection after this answer once the
// server is handing over (see handOver).
func (s *Server) closeWhileTerminating(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.terminating.Load() {
			c.Response().Header().Set(echo.HeaderConnection, "close")
		}
		return next(c)
	}
}
