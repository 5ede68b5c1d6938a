// Command oidc-authenticator is a kube-apiserver TokenReview webhook that verifies OpenID
// Connect id_tokens and maps their holders to Kubernetes users and groups.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Stamped at build time with -ldflags "-X main.version=… -X main.revision=… -X main.buildDate=…"
// by `make build`, `make image`, `make release` and the Dockerfile alike.
var (
	version   = "dev"
	revision  = "unknown" // the git commit the binary was built from
	buildDate = "unknown" // RFC 3339, UTC: the commit's date, so that builds are reproducible
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		stop()
		code := 1
		if e := (*exitError)(nil); errors.As(err, &e) {
			code = e.code
		}
		os.Exit(code)
	}
}
