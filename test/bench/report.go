package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type workloadReport struct {
	workload workload
	results  []measurement
}

func (r workloadReport) get(server string) (measurement, bool) {
	for _, m := range r.results {
		if m.server == server {
			return m, true
		}
	}
	return measurement{}, false
}

func (m measurement) line(w workload) string {
	l := m.load
	s := fmt.Sprintf("%-12s %-19s %8.0f req/s  p50 %7s  p90 %7s  p99 %7s  cpu/req %7s  rss %6.1f MiB  requests %7d  steal %4.1f%%",
		w.name, m.server, l.rate(), us(l.percentile(0.50)), us(l.percentile(0.90)), us(l.percentile(0.99)),
		us(m.cpuPerReq), float64(m.rss)/(1<<20), l.requests, 100*m.steal)
	if w.rotate {
		s += fmt.Sprintf("  jwks %d (%.1f per 10s)", m.jwksFetches, float64(m.jwksFetches)*10/l.elapsed.Seconds())
		if m.server != "ceiling" {
			s += "  new key accepted after " + pickup(m.pickup)
		}
	}
	if l.unexpected > 0 {
		s += fmt.Sprintf("  UNEXPECTED ANSWERS %d", l.unexpected)
	}
	if l.throttled > 0 {
		s += fmt.Sprintf("  429 %d", l.throttled)
	}
	return s
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }

func pickup(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(10 * time.Millisecond).String()
}

// printReport prints the figures as a Markdown table, then each target of the issue with the
// ratio measured in this run and whether it is met.
func printReport(o options, report []workloadReport) {
	peer := "HTTP/2, Go's default"
	if o.peerHTTP1 {
		peer = "HTTP/1.1"
	}
	retried := "no run measured again"
	if o.retries > 0 {
		retried = fmt.Sprintf("a run with host steal above %.0f%% measured again up to %d times", 100*o.maxSteal, o.retries)
	}
	fmt.Printf("## Figures (%d workers, %s workloads, %d tokens per cold workload, median of %d rounds, %s; ceiling and oidc-authenticator HTTP/1.1, peer %s)\n\n",
		o.workers, o.duration, o.tokens, o.rounds, retried, peer)
	fmt.Println("| workload | server | req/s (median) | req/s (range) | p50 | p90 | p99 | server CPU/req | server RSS | JWKS fetches | host steal |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range report {
		for _, m := range r.results {
			l := m.load
			fmt.Printf("| %s | %s | %.0f | %.0f–%.0f | %s | %s | %s | %s | %.1f MiB | %d | %.1f%% |\n", r.workload.name, m.server, l.rate(), m.minRate, m.maxRate,
				us(l.percentile(0.5)), us(l.percentile(0.9)), us(l.percentile(0.99)), us(m.cpuPerReq), float64(m.rss)/(1<<20), m.jwksFetches, 100*m.steal)
		}
	}
	fmt.Printf("\n## Targets\n\n")
	byName := map[string]workloadReport{}
	for _, r := range report {
		byName[r.workload.name] = r
	}
	ratio := func(workload, server, against string, want float64, what string) {
		r, ok := byName[workload]
		if !ok {
			return
		}
		a, _ := r.get(server)
		b, _ := r.get(against)
		got := a.load.rate() / b.load.rate()
		fmt.Printf("- %s: %s %.2f × %s (target ≥ %.2f) %s\n", workload, what, got, against, want, verdict(got >= want))
	}
	ratio("cache hit", "oidc-authenticator", "ceiling", 0.90, "req/s")
	ratio("cold RS256", "oidc-authenticator", "peer", 1.25, "req/s")
	ratio("cold ES256", "oidc-authenticator", "peer", 1.25, "req/s")
	ratio("garbage", "oidc-authenticator", "ceiling", 0.90, "req/s")
	if r, ok := byName["unknown kid"]; ok {
		ours, _ := r.get("oidc-authenticator")
		peer, _ := r.get("peer")
		per10 := float64(ours.jwksFetches) * 10 / ours.load.elapsed.Seconds()
		fmt.Printf("- unknown kid: %d JWKS fetches in %s = %.1f per 10 s (peer: %d, %.0f per 10 s; target ≤ 1 per 10 s) %s\n",
			ours.jwksFetches, ours.load.elapsed.Round(time.Second), per10, peer.jwksFetches,
			float64(peer.jwksFetches)*10/peer.load.elapsed.Seconds(), verdict(ours.jwksFetches <= int64(ours.load.elapsed/(10*time.Second))+1))
		fmt.Printf("- unknown kid: a rotated key accepted after %s (peer: %s; target ≤ 10s) %s\n",
			pickup(ours.pickup), pickup(peer.pickup), verdict(ours.pickup >= 0 && ours.pickup <= 10*time.Second))
		if g, ok := byName["garbage"]; ok {
			gOurs, _ := g.get("oidc-authenticator")
			got := ours.load.rate() / gOurs.load.rate()
			fmt.Printf("- unknown kid: req/s %.2f × our garbage rate (target ≥ 0.90) %s\n", got, verdict(got >= 0.9))
		}
	}
	if r, ok := byName["cold RS256"]; ok {
		ours, _ := r.get("oidc-authenticator")
		peer, _ := r.get("peer")
		got := float64(ours.rss) / float64(peer.rss)
		fmt.Printf("- memory after %d cached identities: %.1f MiB = %.2f × peer's %.1f MiB (target ≤ 0.75) %s\n",
			ours.load.requests, float64(ours.rss)/(1<<20), got, float64(peer.rss)/(1<<20), verdict(got <= 0.75))
	}
	for _, r := range report {
		ours, _ := r.get("oidc-authenticator")
		peer, _ := r.get("peer")
		a, b := ours.load.percentile(0.99), peer.load.percentile(0.99)
		fmt.Printf("- %s: p99 %s vs peer %s (target: no worse) %s\n", r.workload.name, us(a), us(b), verdict(a <= b))
	}
	for _, r := range report {
		for _, m := range r.results {
			if m.load.unexpected > 0 && m.server != "ceiling" {
				fmt.Printf("- %s, %s: %d answers were not the expected authenticated=%v\n", r.workload.name, m.server, m.load.unexpected, r.workload.want)
			}
		}
	}
}

func verdict(ok bool) string {
	if ok {
		return "— met"
	}
	return "— MISSED"
}

// startProfile records a CPU profile of oidc-authenticator while a workload runs, through its
// --profiling endpoint, when -profile names a directory. The returned function waits for it.
func startProfile(ctx context.Context, o options, sp spec, s *server, w workload, roots *x509.CertPool) (func() error, error) {
	if o.profile == "" || sp.name != "oidc-authenticator" {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(o.profile, 0o755); err != nil {
		return nil, err
	}
	seconds := int(min(o.duration, 10*time.Second) / time.Second)
	url := strings.TrimSuffix(s.url, "/authenticate") + fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds)
	path := filepath.Join(o.profile, strings.ReplaceAll(w.name, " ", "-")+".pprof")
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client(roots, 1).Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		done <- errors.Join(err, f.Close())
	}()
	return func() error { return <-done }, nil
}

// saveHeapProfile writes oidc-authenticator's heap profile after a workload, when -profile
// names a directory: what the cache and everything else keep alive.
func saveHeapProfile(ctx context.Context, o options, sp spec, s *server, w workload, roots *x509.CertPool) error {
	if o.profile == "" || sp.name != "oidc-authenticator" {
		return nil
	}
	url := strings.TrimSuffix(s.url, "/authenticate") + "/debug/pprof/heap"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client(roots, 1).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(o.profile, strings.ReplaceAll(w.name, " ", "-")+".heap"))
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}
