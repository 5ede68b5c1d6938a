package webhook

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
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

// readyz reports readiness in kube-apiserver's format: with ?verbose, one [+] or [-] line
// per check, then a verdict.
func (s *Server) readyz(c echo.Context) error {
	var results []CheckResult
	if s.readiness != nil {
		results = s.readiness()
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
	if _, verbose := c.QueryParams()["verbose"]; !verbose {
		if ready {
			return c.String(code, "ok")
		}
		return c.String(code, verdict+"; see /readyz?verbose\n")
	}
	return c.String(code, b.String()+verdict+"\n")
}
