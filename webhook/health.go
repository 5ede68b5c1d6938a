package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// CheckResult is one line of /readyz?verbose.
type CheckResult struct {
	Name   string
	OK     bool
	Detail string
	// Informational results are shown but never make the server unready.
	Informational bool
}

func (s *Server) healthz(c echo.Context) error {
	return c.String(http.StatusOK, "ok")
}

// hasVerifiedClientCert reports whether the caller presented a client certificate the
// server verified against its client CA.
func hasVerifiedClientCert(c echo.Context) bool {
	tls := c.Request().TLS
	return tls != nil && len(tls.VerifiedChains) > 0
}

// readyz reports readiness in kube-apiserver's format: with ?verbose, and when detail says
// the caller may see it, one [+] or [-] line per check, then a verdict; else only the verdict.
func (s *Server) readyz(detail func(echo.Context) bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		var results []CheckResult
		if s.terminating.Load() {
			results = append(results, CheckResult{Name: "shutdown", Detail: "terminating: handing over to the next instance"})
		}
		if s.readiness != nil {
			results = append(results, s.readiness()...)
		}
		ready := true
		var b strings.Builder
		for _, r := range results {
			mark, word := "+", "ok"
			if !r.OK {
				mark, word = "-", "failed"
				if !r.Informational {
					ready = false
				}
			}
			fmt.Fprintf(&b, "[%s]%s %s", mark, r.Name, word)
			if r.Detail != "" {
				fmt.Fprintf(&b, ": %s", r.Detail)
			}
			b.WriteByte('\n')
		}
		code, verdict := http.StatusOK, "readyz check passed"
		if !ready {
			code, verdict = http.StatusServiceUnavailable, "readyz check failed"
		}
		_, verbose := c.QueryParams()["verbose"]
		switch {
		case verbose && detail(c):
			return c.String(code, b.String()+verdict+"\n")
		case verbose:
			return c.String(code, verdict+"; the detail is served on the metrics listener (server.metricsAddress) and to callers with a client certificate\n")
		case ready:
			return c.String(code, "ok")
		default:
			return c.String(code, verdict+"; see /readyz?verbose\n")
		}
	}
}

// newProbes builds the routes of the plain-HTTP metrics and probes listener.
func (s *Server) newProbes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Use(middleware.Recover())
	e.GET("/healthz", s.healthz)
	e.GET("/livez", s.healthz)
	// This listener is meant for loopback (the node's Prometheus and kubelet's probes, on the
	// host network): it shows the detail.
	e.GET("/readyz", s.readyz(func(echo.Context) bool { return true }))
	if s.metrics != nil {
		e.GET("/metrics", echo.WrapHandler(s.metrics.Handler()))
	}
	return e
}

// ProbesHandler exposes the metrics and probes routes, for tests that bring their own listener.
func (s *Server) ProbesHandler() http.Handler { return s.probes }

// ServeProbes answers /metrics, /healthz, /livez and /readyz over plain HTTP on ln until
// ctx ends. Run it on a loopback address: it has no TLS and no authentication.
func (s *Server) ServeProbes(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.probes,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      45 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("serving metrics and probes over plain HTTP", "address", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut the metrics listener down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}
