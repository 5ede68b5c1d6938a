package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// The scale curves (issue 17, `make bench-scale`): how oidc-authenticator's cost grows with
// what a large organisation brings, one dimension at a time, every point of a curve measured
// in the same run, the points interleaved round by round. Only oidc-authenticator runs: each
// curve is compared with its own first point.

// scaleOptions are the points of each curve.
type scaleOptions struct {
	groups      []int // groups per token
	expressions []int // mapUsers entries matched by expression
	fileEntries []int // entries in mapping.file
	identities  []int // cached identities
	coldTokens  int   // distinct tokens per cold point
	idle        time.Duration
}

func defaultScale(short bool) scaleOptions {
	if short {
		return scaleOptions{groups: []int{1, 200}, expressions: []int{0, 100}, fileEntries: []int{1_000, 5_000},
			identities: []int{1_000, 10_000}, coldTokens: 500, idle: 2 * time.Second}
	}
	return scaleOptions{groups: []int{1, 50, 200, 1_000}, expressions: []int{0, 100, 1_000}, fileEntries: []int{10_000, 50_000},
		identities: []int{10_000, 100_000, 1_000_000}, coldTokens: 3_000, idle: 10 * time.Second}
}

// point is one measured point of a curve.
type point struct {
	x     int
	cold  time.Duration // server CPU per cold review
	hit   time.Duration // server CPU per cache hit
	extra map[string]float64
}

func runScale(ctx context.Context, o options) error {
	so := defaultScale(o.short)
	dir, err := os.MkdirTemp("", "oidc-authenticator-bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	authenticator, err := filepath.Abs(o.authenticator)
	if err != nil {
		return err
	}
	roots, err := newTLSRoots(dir)
	if err != nil {
		return err
	}
	key, err := newSigningKey("es-1", jose.ES256)
	if err != nil {
		return err
	}
	iss, err := startIssuer(roots.cert, key)
	if err != nil {
		return err
	}
	defer iss.close()
	sc := &scaler{o: o, so: so, dir: dir, bin: authenticator, roots: roots, iss: iss, key: key}
	fmt.Printf("# Scale curves (%d workers, %s hit runs, %d tokens per cold point, median of %d rounds)\n\n", o.workers, o.duration, so.coldTokens, o.rounds)

	curves := []struct {
		name, unit string
		run        func(ctx context.Context, x int) (point, error)
		xs         []int
		rounds     int
	}{
		{"groups per token", "groups", sc.groups(false), so.groups, o.rounds},
		{"groups per token, all mapped by mapGroups", "groups", sc.groups(true), so.groups, o.rounds},
		{"mapUsers expression entries", "entries", sc.expressions, so.expressions, o.rounds},
		{"mapping.file entries", "entries", sc.file, so.fileEntries, o.rounds},
		{"cached identities", "identities", sc.identities, so.identities, 1},
	}
	for _, c := range curves {
		if !o.selects(c.name) {
			continue
		}
		fmt.Printf("## %s\n\n", c.name)
		byX := map[int][]point{}
		for round := range c.rounds {
			for _, x := range c.xs {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				p, err := c.run(ctx, x)
				if err != nil {
					return fmt.Errorf("%s, %d %s: %w", c.name, x, c.unit, err)
				}
				fmt.Printf("round %d  %8d %-10s cold %7s  hit %7s  %s\n", round+1, x, c.unit, us(p.cold), us(p.hit), extras(p.extra))
				byX[x] = append(byX[x], p)
			}
		}
		fmt.Println()
		printCurve(c.unit, c.xs, byX)
	}
	return nil
}

// printCurve prints the median of each point and, beside it, how it grew from the first point
// compared with how x grew: flat (under 1.25×), sublinear (less than half of x's growth),
// linear (up to 1.1 × x's growth) or worse.
func printCurve(unit string, xs []int, byX map[int][]point) {
	meds := make([]point, len(xs))
	for i, x := range xs {
		meds[i] = medianPoint(byX[x])
	}
	keys := []string{}
	for k := range meds[0].extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Printf("| %s | cold CPU/review | growth | hit CPU/review | growth |", unit)
	for _, k := range keys {
		fmt.Printf(" %s | growth |", k)
	}
	fmt.Println()
	fmt.Print("|---:|---:|---|---:|---|")
	for range keys {
		fmt.Print("---:|---|")
	}
	fmt.Println()
	base := meds[0]
	for i, m := range meds {
		xg := float64(xs[i]) / float64(xs[0])
		fmt.Printf("| %d | %s | %s | %s | %s |", xs[i], us(m.cold), growth(float64(m.cold), float64(base.cold), xg), us(m.hit), growth(float64(m.hit), float64(base.hit), xg))
		for _, k := range keys {
			fmt.Printf(" %.1f | %s |", m.extra[k], growth(m.extra[k], base.extra[k], xg))
		}
		fmt.Println()
	}
	fmt.Println()
}

func growth(v, base, xGrowth float64) string {
	if base <= 0 || v <= 0 {
		return "–"
	}
	g := v / base
	switch {
	case xGrowth == 1:
		return "1.00×"
	case g < 1.25:
		return fmt.Sprintf("%.2f× flat", g)
	case g < xGrowth/2:
		return fmt.Sprintf("%.2f× sublinear", g)
	case g <= xGrowth*1.1:
		return fmt.Sprintf("%.2f× linear", g)
	default:
		return fmt.Sprintf("%.2f× worse", g)
	}
}

func medianPoint(ps []point) point {
	if len(ps) == 0 {
		return point{}
	}
	med := func(get func(point) float64) float64 {
		vs := make([]float64, len(ps))
		for i, p := range ps {
			vs[i] = get(p)
		}
		slices.Sort(vs)
		return vs[len(vs)/2]
	}
	m := point{x: ps[0].x, extra: map[string]float64{}}
	m.cold = time.Duration(med(func(p point) float64 { return float64(p.cold) }))
	m.hit = time.Duration(med(func(p point) float64 { return float64(p.hit) }))
	for k := range ps[0].extra {
		m.extra[k] = med(func(p point) float64 { return p.extra[k] })
	}
	return m
}

func extras(m map[string]float64) string {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s %.1f", k, m[k])
	}
	return b.String()
}

// scaler runs oidc-authenticator under one configuration at a time.
type scaler struct {
	o     options
	so    scaleOptions
	dir   string
	bin   string
	roots tlsRoots
	iss   *issuer
	key   signingKey
}

// serverSetup is what a point changes in the server's configuration.
type serverSetup struct {
	mapping     string // mapping.file content ("" for none)
	cacheTTL    string
	cacheMax    int
	cacheMaxMiB int
}

func (s *scaler) start(setup serverSetup) (*server, string, error) {
	metricsPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	mappingLine := ""
	if setup.mapping != "" {
		path := filepath.Join(s.dir, "mapping.yaml")
		if err := os.WriteFile(path, []byte(setup.mapping), 0o600); err != nil {
			return nil, "", err
		}
		mappingLine = "mapping:\n  file: " + path + "\n"
	}
	if setup.cacheTTL == "" {
		setup.cacheTTL = "2m"
	}
	cacheLines := "cache:\n  ttl: " + setup.cacheTTL + "\n"
	if setup.cacheMax > 0 {
		cacheLines += fmt.Sprintf("  maxEntries: %d\n  maxBytes: %dMi\n", setup.cacheMax, setup.cacheMaxMiB)
	}
	path, err := writeConfig(s.dir, s.iss.URL, s.roots, fmt.Sprintf("127.0.0.1:%d", metricsPort), mappingLine+cacheLines)
	if err != nil {
		return nil, "", err
	}
	srv, err := start(spec{name: "oidc-authenticator", bin: s.bin, args: []string{"server", "--config", path, "--address", "{addr}"},
		path: "/authenticate", ready: "/readyz"}, s.dir, s.roots)
	return srv, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort), err
}

// cpuPer runs l against srv and returns the server's CPU time per request.
func (s *scaler) cpuPer(ctx context.Context, srv *server, l load) (time.Duration, error) {
	before, err := srv.usage()
	if err != nil {
		return 0, err
	}
	res, err := l.run(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w\n%s", err, srv.tail(10))
	}
	if res.unexpected > 0 || res.throttled > 0 {
		return 0, fmt.Errorf("%d unexpected answers and %d 429s of %d\n%s", res.unexpected, res.throttled, res.requests, srv.tail(10))
	}
	after, err := srv.usage()
	if err != nil {
		return 0, err
	}
	return (after.cpu - before.cpu) / time.Duration(max(1, res.requests)), nil
}

// coldAndHit measures cold reviews of fresh tokens, then cache hits of one of them.
func (s *scaler) coldAndHit(ctx context.Context, setup serverSetup, tokens []string) (point, error) {
	srv, _, err := s.start(setup)
	if err != nil {
		return point{}, err
	}
	defer srv.stop()
	yes := true
	if _, ok, err := post(ctx, client(s.roots.pool, 1), srv.url, reviewBody(tokens[len(tokens)-1])); err != nil || !ok {
		return point{}, fmt.Errorf("the warm-up token was not accepted (%v):\n%s", err, srv.tail(10))
	}
	var p point
	if p.cold, err = s.cpuPer(ctx, srv, load{url: srv.url, roots: s.roots.pool, workers: s.o.workers, duration: 10 * time.Minute,
		tokens: tokens[:len(tokens)-1], pick: eachOnce, want: &yes}); err != nil {
		return point{}, err
	}
	if p.hit, err = s.cpuPer(ctx, srv, load{url: srv.url, roots: s.roots.pool, workers: s.o.workers, duration: s.o.duration,
		tokens: tokens[:1], pick: repeatFirst, want: &yes}); err != nil {
		return point{}, err
	}
	return p, nil
}

// groups: tokens with n groups each (one shared by everyone, the others per team), mapped or
// not by one mapGroups entry per group.
func (s *scaler) groups(mapped bool) func(ctx context.Context, n int) (point, error) {
	return func(ctx context.Context, n int) (point, error) {
		groups := make([]string, n)
		for i := range groups {
			groups[i] = fmt.Sprintf("%08x-aaaa-bbbb-cccc-%012d", i, i) // Entra ID and Keycloak send GUIDs
		}
		tokens, err := s.mint(s.so.coldTokens+1, func(i int, c map[string]any) { c["groups"] = groups })
		if err != nil {
			return point{}, err
		}
		setup := serverSetup{}
		if mapped {
			var b strings.Builder
			b.WriteString("mapGroups:\n")
			for i, g := range groups {
				fmt.Fprintf(&b, "- group: %q\n  groups: [\"team-%d\"]\n", g, i)
			}
			setup.mapping = configMapFile(map[string]string{"mapGroups": strings.TrimPrefix(b.String(), "mapGroups:\n")})
		}
		return s.coldAndHit(ctx, setup, tokens)
	}
}

// expressions: n mapUsers entries each matched by an expression on the email, as an
// organisation writes one rule per person; the tokens' users are among them.
func (s *scaler) expressions(ctx context.Context, n int) (point, error) {
	tokens, err := s.mint(s.so.coldTokens+1, nil)
	if err != nil {
		return point{}, err
	}
	setup := serverSetup{}
	if n > 0 {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "- expression: \"claims.email == 'user-%d@example.com'\"\n  username: \"person-%d\"\n  groups: [\"expr-%d\"]\n", i, i, i%20)
		}
		setup.mapping = configMapFile(map[string]string{"mapUsers": b.String()})
	}
	return s.coldAndHit(ctx, setup, tokens)
}

// file: a mapping.file of n entries (a UUID subject, an email and a group each, ~110 B as
// issue 17 sized them): the idle server's CPU, then one edit's reload time, CPU and peak RSS.
func (s *scaler) file(ctx context.Context, n int) (point, error) {
	content := func(edit int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "- subject: \"%08x-1111-2222-3333-%012d\"\n  username: \"user-%d@example.com\"\n  groups: [\"team-%d\"]\n", i, i+edit, i, i%50)
		}
		return configMapFile(map[string]string{"mapUsers": b.String()})
	}
	srv, metrics, err := s.start(serverSetup{mapping: content(0)})
	if err != nil {
		return point{}, err
	}
	defer srv.stop()
	p := point{extra: map[string]float64{}}
	// What start-up leaves (the first decode's garbage, the file's first seconds, when its
	// mtime is too recent to trust) is not idle cost.
	time.Sleep(3 * time.Second)
	idleFrom, err := srv.usage()
	if err != nil {
		return point{}, err
	}
	time.Sleep(s.so.idle)
	idleTo, err := srv.usage()
	if err != nil {
		return point{}, err
	}
	p.extra["idle CPU ms/s"] = float64(idleTo.cpu-idleFrom.cpu) / float64(time.Millisecond) / s.so.idle.Seconds()
	steady := idleTo.rss
	reloads, err := mappingReloads(ctx, metrics)
	if err != nil {
		return point{}, err
	}
	if err := resetPeakRSS(srv); err != nil {
		return point{}, err
	}
	began := time.Now()
	if err := os.WriteFile(filepath.Join(s.dir, "mapping.yaml.new"), []byte(content(1)), 0o600); err != nil {
		return point{}, err
	}
	if err := os.Rename(filepath.Join(s.dir, "mapping.yaml.new"), filepath.Join(s.dir, "mapping.yaml")); err != nil {
		return point{}, err
	}
	for {
		r, err := mappingReloads(ctx, metrics)
		if err != nil {
			return point{}, err
		}
		if r > reloads {
			break
		}
		if time.Since(began) > time.Minute {
			return point{}, fmt.Errorf("the edit was not reloaded within a minute\n%s", srv.tail(10))
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(began)
	after, err := srv.usage()
	if err != nil {
		return point{}, err
	}
	peak, err := peakRSS(srv)
	if err != nil {
		return point{}, err
	}
	p.extra["reload s"] = took.Seconds()
	p.extra["reload CPU s"] = (after.cpu - idleTo.cpu).Seconds()
	p.extra["steady RSS MiB"] = float64(steady) / (1 << 20)
	p.extra["reload peak/steady RSS"] = float64(peak) / float64(steady)
	return p, nil
}

// identities: n distinct valid tokens fill the cache, then cache hits cycle over all of them.
func (s *scaler) identities(ctx context.Context, n int) (point, error) {
	fmt.Printf("minting %d ES256 tokens...\n", n+1)
	tokens, err := s.mint(n+1, nil)
	if err != nil {
		return point{}, err
	}
	mib := max(64, n/2000) // ~500 B an identity is room enough
	srv, _, err := s.start(serverSetup{cacheTTL: "1h", cacheMax: n + 1, cacheMaxMiB: mib})
	if err != nil {
		return point{}, err
	}
	defer srv.stop()
	yes := true
	if _, ok, err := post(ctx, client(s.roots.pool, 1), srv.url, reviewBody(tokens[n])); err != nil || !ok {
		return point{}, fmt.Errorf("the warm-up token was not accepted (%v):\n%s", err, srv.tail(10))
	}
	warm, err := srv.usage()
	if err != nil {
		return point{}, err
	}
	var p point
	if p.cold, err = s.cpuPer(ctx, srv, load{url: srv.url, roots: s.roots.pool, workers: s.o.workers, duration: time.Hour,
		tokens: tokens[:n], pick: eachOnce, want: &yes}); err != nil {
		return point{}, err
	}
	filled, err := srv.usage()
	if err != nil {
		return point{}, err
	}
	// Filling takes minutes at a million, so the point has one round; its hits are measured
	// in three runs instead, and the median run counts.
	hits := make([]time.Duration, 3)
	for i := range hits {
		if hits[i], err = s.cpuPer(ctx, srv, load{url: srv.url, roots: s.roots.pool, workers: s.o.workers, duration: s.o.duration,
			tokens: tokens[:n], pick: cycle, want: &yes}); err != nil {
			return point{}, err
		}
	}
	slices.Sort(hits)
	p.hit = hits[1]
	p.extra = map[string]float64{"RSS B/identity": float64(filled.rss-warm.rss) / float64(n)}
	return p, nil
}

// mint signs n tokens shaped like claimsFor's, each changed by edit (nil: as they are).
func (s *scaler) mint(n int, edit func(i int, claims map[string]any)) ([]string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: s.key.alg, Key: s.key.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.key.kid))
	if err != nil {
		return nil, err
	}
	return mintWith(n, func(i int) (string, error) {
		c := claimsFor(s.iss.URL, i)
		if edit != nil {
			edit(i, c)
		}
		return sign(signer, c)
	})
}

// configMapFile is a ConfigMap manifest with these data keys, as mapping.file reads it.
func configMapFile(data map[string]string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: oidc-auth\n  namespace: kube-system\ndata:\n")
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range data {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "  %s: |\n", k)
		for line := range strings.SplitSeq(strings.TrimRight(data[k], "\n"), "\n") {
			b.WriteString("    " + line + "\n")
		}
	}
	return b.String()
}

var reloadsLine = regexp.MustCompile(`(?m)^oidc_authenticator_mapping_reloads?_total\{result="success"\} (\d+)`)

// mappingReloads reads the server's count of accepted mapping versions.
func mappingReloads(ctx context.Context, metricsURL string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client(nil, 1).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, err
	}
	m := reloadsLine.FindSubmatch(b)
	if m == nil {
		return 0, nil
	}
	return strconv.Atoi(string(m[1]))
}

// resetPeakRSS starts the process's peak resident memory (VmHWM) afresh (Linux: 5 into
// /proc/PID/clear_refs).
func resetPeakRSS(s *server) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.cmd.Process.Pid), []byte("5"), 0)
}

func peakRSS(s *server) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kib << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", s.cmd.Process.Pid)
}
