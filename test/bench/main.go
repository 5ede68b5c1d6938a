// Command bench measures oidc-authenticator against the most any webhook can do on this
// machine (the ceiling) and against kube-apiserver's own JWT authenticator served as a webhook
// (the reference peer), side by side in one run: requests per second, latency percentiles,
// server CPU per request, server memory and JWKS fetches, for each workload. It runs every
// server as a process of its own on loopback, stops them all, and stops by itself.
//
//	make bench                 # the full run recorded in docs/performance.md
//	make bench BENCH_FLAGS=-short
//	make bench-scale           # how the cost grows with groups, mapping entries and cached identities
//
// It lives in a module of its own so that the product's go.mod does not carry k8s.io/apiserver.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := serve(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench serve:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.authenticator, "authenticator", "bin/oidc-authenticator", "the oidc-authenticator binary under test")
	flag.IntVar(&o.workers, "workers", 8, "concurrent requests")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each time-bounded workload")
	flag.IntVar(&o.tokens, "tokens", 100_000, "distinct valid tokens per cold workload (RS256 and ES256); the memory figure is read after them")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per workload, the servers interleaved; the median round is reported")
	flag.BoolVar(&o.short, "short", false, "a quick run that checks the harness: one round of 2s workloads, 5,000 tokens")
	flag.StringVar(&o.only, "only", "", "run only the workloads whose names start with one of these comma-separated prefixes")
	flag.BoolVar(&o.peerHTTP1, "peer-http1", false, "serve the peer over HTTP/1.1 only, as oidc-authenticator does (default: Go's HTTP/2, as users assemble it)")
	flag.StringVar(&o.profile, "profile", "", "write CPU profiles of oidc-authenticator per workload into this directory (its --profiling endpoint)")
	flag.Float64Var(&o.maxSteal, "max-steal", 0.05, "measure a server again when the host took more than this fraction of the machine's CPU during its run (steal time, /proc/stat)")
	flag.BoolVar(&o.scale, "scale", false, "measure the scale curves instead (groups per token, expression entries, mapping file size, cached identities; make bench-scale)")
	flag.IntVar(&o.retries, "retries", 2, "how many times a disturbed run is measured again; the least disturbed attempt counts")
	flag.Parse()
	if o.short {
		o.duration, o.tokens, o.rounds, o.retries = 2*time.Second, 5_000, 1, 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runner := run
	if o.scale {
		runner = runScale
	}
	if err := runner(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	authenticator string
	workers       int
	duration      time.Duration
	tokens        int
	rounds        int
	short         bool
	only          string
	profile       string
	peerHTTP1     bool
	maxSteal      float64
	retries       int
	scale         bool
}

// selects reports whether -only lets the workload named name run.
func (o options) selects(name string) bool {
	if o.only == "" {
		return true
	}
	for prefix := range strings.SplitSeq(o.only, ",") {
		if strings.HasPrefix(name, strings.TrimSpace(prefix)) {
			return true
		}
	}
	return false
}

// serve runs one of the reference servers:
// `bench serve ceiling ADDR CERT KEY` or `bench serve peer|peer-http1 ADDR CERT KEY ISSUER CA`.
func serve(args []string) error {
	switch {
	case len(args) == 4 && args[0] == "ceiling":
		return serveCeiling(args[1], args[2], args[3])
	case len(args) == 6 && (args[0] == "peer" || args[0] == "peer-http1"):
		return servePeer(args[1], args[2], args[3], args[4], args[5], args[0] == "peer-http1")
	}
	return fmt.Errorf("want: serve ceiling ADDR CERT KEY | serve peer|peer-http1 ADDR CERT KEY ISSUER CA_FILE")
}
