package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/mapping"
	"github.com/oidc-authenticator/oidc-authenticator/webhook"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// issuerYAML is a jwt[] entry for ti with the given audience.
func issuerYAML(ti *issuertest.Issuer, audience string) string {
	return `- issuer:
    url: ` + ti.URL + `
    audiences: [` + audience + `]
    certificateAuthority: |
` + indentLines(ti.CAPEM, "      ") + `
  claimMappings:
    username: {claim: email, prefix: ""}
`
}

func indentLines(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

type reloadHarness struct {
	svc   *Service
	path  string
	state string
	logs  *lockedBuffer
}

func (h *reloadHarness) configYAML(server string, jwt ...string) string {
	return "apiVersion: oidc-authenticator.io/v1alpha1\nkind: AuthenticatorConfiguration\nserver:\n  stateDir: " + h.state + "\n" + server +
		"jwt:\n" + strings.Join(jwt, "")
}

func (h *reloadHarness) write(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(h.path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// newReloadHarness starts the issuers of a service built from the file with jwt, and waits
// until they are ready.
func newReloadHarness(t *testing.T, jwt ...string) *reloadHarness {
	t.Helper()
	dir := t.TempDir()
	h := &reloadHarness{path: filepath.Join(dir, "config.yaml"), state: filepath.Join(dir, "state"), logs: &lockedBuffer{}}
	h.write(t, h.configYAML("", jwt...))
	cfg, err := config.Load(h.path)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(h.logs, nil)), ConfigFile: h.path})
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	ctx, cancel := context.WithCancel(context.Background())
	wait := svc.StartIssuers(ctx)
	t.Cleanup(func() {
		cancel()
		wait()
		if t.Failed() {
			t.Logf("log:\n%s", h.logs.String())
		}
	})
	for _, is := range svc.Issuers() {
		waitReady(t, is)
	}
	return h
}

func waitReady(t *testing.T, is *issuer.Issuer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := is.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

func (h *reloadHarness) authenticate(t *testing.T, tok string) (authn.Result, error) {
	t.Helper()
	return h.svc.Authenticator().Authenticate(context.Background(), tok)
}

func (h *reloadHarness) configLine(t *testing.T) webhook.CheckResult {
	t.Helper()
	for _, r := range h.svc.readiness() {
		if r.Name == "config" {
			return r
		}
	}
	t.Fatal("no config line in /readyz")
	return webhook.CheckResult{}
}

func (h *reloadHarness) reloads(status string) float64 {
	return metricValue(h.svc, "oidc_authenticator_config_automatic_reloads_total", status)
}

// metricValue reads a metric with label status from the service's registry; -1 when absent.
func metricValue(s *Service, name, status string) float64 {
	families, err := s.metrics.Gatherer().Gather()
	if err != nil {
		return -1
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "status" && l.GetValue() == status {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func reason(err error) authn.Reason {
	var d *authn.Denial
	if errors.As(err, &d) {
		return d.Reason
	}
	return ""
}

// An invalid version is refused whole: nothing of it applies (not even its valid parts), the
// last good version keeps serving, and the refusal shows in the log (naming the field), the
// metrics and /readyz?verbose. A valid version after it applies.
func TestReloadRefusesAnInvalidVersionWhole(t *testing.T) {
	ti := issuertest.New(t)
	h := newReloadHarness(t, issuerYAML(ti, "kubernetes"))
	tok := ti.Token(t, nil)
	if _, err := h.authenticate(t, tok); err != nil {
		t.Fatal(err)
	}
	if got := h.reloads("failure"); got != 0 {
		t.Fatalf("failure counter at start: %v", got)
	}

	// The audience change is valid; the negative cache bound is not.
	h.write(t, h.configYAML("", issuerYAML(ti, "other"))+"cache: {maxEntries: -1}\n")
	err := h.svc.ReloadConfig()
	if err == nil || !strings.Contains(err.Error(), "cache.maxEntries") {
		t.Fatalf("ReloadConfig: %v, want a refusal naming cache.maxEntries", err)
	}
	if _, err := h.authenticate(t, tok); err != nil {
		t.Fatalf("after a refused version, the last good one must serve: %v", err)
	}
	if h.reloads("failure") != 1 || h.reloads("success") != 0 {
		t.Fatalf("reloads: failure %v success %v", h.reloads("failure"), h.reloads("success"))
	}
	if metricValue(h.svc, "oidc_authenticator_config_automatic_reload_last_timestamp_seconds", "failure") <= 0 {
		t.Fatal("no timestamp for the failed reload")
	}
	line := h.configLine(t)
	if !line.OK || !strings.Contains(line.Detail, "refused") || !strings.Contains(line.Detail, "cache.maxEntries") {
		t.Fatalf("/readyz config line: %+v", line)
	}
	if l := h.logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "cache.maxEntries") {
		t.Fatalf("the refusal is not logged as an error naming the field:\n%s", l)
	}
	// The same invalid content again is not a new refusal.
	if err := h.svc.ReloadConfig(); err != nil || h.reloads("failure") != 1 {
		t.Fatalf("the same content again: %v, failures %v", err, h.reloads("failure"))
	}

	h.write(t, h.configYAML("", issuerYAML(ti, "other")))
	if err := h.svc.ReloadConfig(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.authenticate(t, tok); reason(err) != authn.ReasonAudience {
		t.Fatalf("after the valid version, the old audience: %v, want %s", err, authn.ReasonAudience)
	}
	if h.reloads("success") != 1 {
		t.Fatalf("success counter %v", h.reloads("success"))
	}
	if line := h.configLine(t); strings.Contains(line.Detail, "refused") {
		t.Fatalf("the refusal is still shown after a good version: %+v", line)
	}
}

// The watcher refuses an invalid content only when it sees it on two polls in a row: a file
// caught half-written is not reported.
func TestReloadSettlesInvalidContentBeforeRefusing(t *testing.T) {
	ti := issuertest.New(t)
	h := newReloadHarness(t, issuerYAML(ti, "kubernetes"))
	h.write(t, "apiVersion: oidc-authenticator.io/v1alpha1\nkind: Authen")
	if err := h.svc.checkConfig(true); err != nil || h.reloads("failure") != 0 {
		t.Fatalf("first sight of an invalid content: %v, failures %v", err, h.reloads("failure"))
	}
	if err := h.svc.checkConfig(true); err == nil || h.reloads("failure") != 1 {
		t.Fatalf("second sight: %v, failures %v", err, h.reloads("failure"))
	}
}

// An added issuer is discovered in the background: the others serve meanwhile, and its
// tokens are accepted once it is ready.
func TestReloadAddsAnIssuerInTheBackground(t *testing.T) {
	a, b := issuertest.New(t), issuertest.New(t)
	h := newReloadHarness(t, issuerYAML(a, "kubernetes"))
	b.SetDown(true)
	h.write(t, h.configYAML("", issuerYAML(a, "kubernetes"), issuerYAML(b, "kubernetes")))
	if err := h.svc.ReloadConfig(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.authenticate(t, a.Token(t, nil)); err != nil {
		t.Fatalf("the issuer already there, while the added one is down: %v", err)
	}
	if _, err := h.authenticate(t, b.Token(t, nil)); reason(err) != authn.ReasonIssuerNotReady {
		t.Fatalf("the added issuer before its discovery: %v, want %s", err, authn.ReasonIssuerNotReady)
	}
	issuers := h.svc.Issuers()
	if len(issuers) != 2 || issuers[1].URL() != b.URL {
		t.Fatalf("issuers after the reload: %v", issuers)
	}
	b.SetDown(false)
	waitReady(t, issuers[1])
	if _, err := h.authenticate(t, b.Token(t, nil)); err != nil {
		t.Fatalf("the added issuer once ready: %v", err)
	}
	if !strings.Contains(h.logs.String(), "issuers_added=["+b.URL+"]") {
		t.Fatalf("the reload log does not name the added issuer:\n%s", h.logs.String())
	}
}

// A removed issuer is refused at once, also for a token the cache holds; the issuers kept keep
// their cached tokens and their keys (no new fetch).
func TestReloadRemovesAnIssuerAndItsCachedTokens(t *testing.T) {
	a, b := issuertest.New(t), issuertest.New(t)
	h := newReloadHarness(t, issuerYAML(a, "kubernetes"), issuerYAML(b, "kubernetes"))
	tokA, tokB := a.Token(t, nil), b.Token(t, nil)
	for _, tok := range []string{tokA, tokB, tokA, tokB} {
		if _, err := h.authenticate(t, tok); err != nil {
			t.Fatal(err)
		}
	}
	if res, _ := h.authenticate(t, tokB); !res.Cached {
		t.Fatal("the token of b is not cached; the test proves nothing")
	}
	fetches := a.JWKSFetches() + a.DiscoveryFetches()
	h.write(t, h.configYAML("", issuerYAML(a, "kubernetes")))
	if err := h.svc.ReloadConfig(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.authenticate(t, tokB); reason(err) != authn.ReasonUnknownIssuer {
		t.Fatalf("a cached token of the removed issuer: %v, want %s", err, authn.ReasonUnknownIssuer)
	}
	if res, err := h.authenticate(t, tokA); err != nil || !res.Cached {
		t.Fatalf("a cached token of the kept issuer: cached=%v err=%v", res.Cached, err)
	}
	if got := a.JWKSFetches() + a.DiscoveryFetches(); got != fetches {
		t.Fatalf("the kept issuer fetched again (%d -> %d)", fetches, got)
	}
	if n := len(h.svc.Issuers()); n != 1 {
		t.Fatalf("%d issuers after removing one", n)
	}
	// Its gauges go once it has stopped (alerts on issuer_ready must not see it any more).
	for deadline := time.Now().Add(20 * time.Second); hasIssuerGauge(h.svc, b.URL); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the removed issuer's issuer_ready gauge is still exported")
		}
	}
	if !hasIssuerGauge(h.svc, a.URL) {
		t.Fatal("the kept issuer's issuer_ready gauge is gone")
	}
}

func hasIssuerGauge(s *Service, url string) bool {
	families, _ := s.metrics.Gatherer().Gather()
	for _, f := range families {
		if f.GetName() != "oidc_authenticator_issuer_ready" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "issuer" && l.GetValue() == url {
					return true
				}
			}
		}
	}
	return false
}

// A changed entry applies to the next review, even a cached token, and even while the issuer
// is unreachable: the new entry starts from the keys the old one had.
func TestReloadChangedIssuerAppliesAtOnce(t *testing.T) {
	ti := issuertest.New(t)
	h := newReloadHarness(t, issuerYAML(ti, "kubernetes"))
	tok := ti.Token(t, nil)
	other := ti.Token(t, map[string]any{"aud": "other"})
	for range 2 {
		if _, err := h.authenticate(t, tok); err != nil {
			t.Fatal(err)
		}
	}
	ti.SetDown(true)
	h.write(t, h.configYAML("", issuerYAML(ti, "other")))
	if err := h.svc.ReloadConfig(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.authenticate(t, tok); reason(err) != authn.ReasonAudience {
		t.Fatalf("a cached token whose audience the new entry refuses: %v", err)
	}
	if _, err := h.authenticate(t, other); err != nil {
		t.Fatalf("a token for the new audience, the issuer down: %v", err)
	}
	if !strings.Contains(h.logs.String(), "issuers_changed=["+ti.URL+"]") {
		t.Fatalf("the reload log does not name the changed issuer:\n%s", h.logs.String())
	}
}

// Settings that cannot change live are named in a warning and in /readyz, and keep their
// running value; the rest of the version applies.
func TestReloadNamesSettingsThatNeedARestart(t *testing.T) {
	ti := issuertest.New(t)
	h := newReloadHarness(t, issuerYAML(ti, "kubernetes"))
	addr := h.svc.current.Server.Address
	h.write(t, h.configYAML("  address: 127.0.0.1:1\n  maxInFlightVerifications: 3\n", issuerYAML(ti, "kubernetes"))+"mapping: {file: /nonexistent}\n")
	if err := h.svc.ReloadConfig(); err != nil {
		t.Fatal(err)
	}
	l := h.logs.String()
	if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "needs_restart=\"[server.address mapping.file]\"") {
		t.Fatalf("no warning naming server.address and mapping.file:\n%s", l)
	}
	if strings.Contains(l, "maxInFlightVerifications]") {
		t.Fatalf("maxInFlightVerifications changes live, yet is named as needing a restart:\n%s", l)
	}
	if got := h.svc.current.Server.Address; got != addr {
		t.Fatalf("server.address became %s while running", got)
	}
	if got := *h.svc.current.Server.MaxInFlightVerifications; got != 3 {
		t.Fatalf("maxInFlightVerifications is %d, want 3", got)
	}
	if line := h.configLine(t); !strings.Contains(line.Detail, "waiting for a restart: server.address, mapping.file") {
		t.Fatalf("/readyz config line: %+v", line)
	}
}

// The watcher picks up a mounted ConfigMap's atomic ..data swap.
func TestWatchConfigFollowsAMountedConfigMap(t *testing.T) {
	a, b := issuertest.New(t), issuertest.New(t)
	dir := t.TempDir()
	mount := func(content string) {
		version := filepath.Join(dir, fmt.Sprintf("..%d", time.Now().UnixNano()))
		if err := os.MkdirAll(version, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(version, "config.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "config.yaml")); err != nil {
			if err := os.Symlink(filepath.Join("..data", "config.yaml"), filepath.Join(dir, "config.yaml")); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(filepath.Base(version), filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	h := &reloadHarness{path: filepath.Join(dir, "config.yaml"), state: t.TempDir(), logs: &lockedBuffer{}}
	mount(h.configYAML("", issuerYAML(a, "kubernetes")))
	cfg, err := config.Load(h.path)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(h.logs, nil)), ConfigFile: h.path, ConfigPollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waitIssuers := svc.StartIssuers(ctx)
	waitWatch := svc.WatchConfig(ctx)
	defer func() { cancel(); waitWatch(); waitIssuers() }()
	if line := svc.configReadiness(1); !strings.Contains(line.Detail, "version ") {
		t.Fatalf("the version read at start is not named: %+v", line)
	}

	mount(h.configYAML("", issuerYAML(a, "kubernetes"), issuerYAML(b, "kubernetes")))
	deadline := time.Now().Add(30 * time.Second)
	for len(svc.Issuers()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the swapped version was never applied:\n%s", h.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := metricValue(svc, "oidc_authenticator_config_automatic_reloads_total", "success"); n != 1 {
		t.Fatalf("success reloads %v, want 1 (the version at start is not a reload)", n)
	}
}

// With KeepState, a restarted service judges the first token with the keys the previous one
// had, although the issuer is down, and /readyz says where the keys come from.
func TestRestartJudgesTheFirstTokenWithTheKeptKeys(t *testing.T) {
	ti := issuertest.New(t)
	dir := t.TempDir()
	h := &reloadHarness{path: filepath.Join(dir, "config.yaml"), state: filepath.Join(dir, "state"), logs: &lockedBuffer{}}
	h.write(t, h.configYAML("", issuerYAML(ti, "kubernetes")))
	run := func() (*Service, func()) {
		cfg, err := config.Load(h.path)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(h.logs, nil)), ConfigFile: h.path, KeepState: true})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		wait := svc.StartIssuers(ctx)
		waitReady(t, svc.Issuers()[0])
		return svc, func() { cancel(); wait() }
	}
	_, stop := run()
	stop()
	if entries, err := os.ReadDir(filepath.Join(h.state, "cache", "issuers")); err != nil || len(entries) != 1 {
		t.Fatalf("kept state: %v %v", entries, err)
	}
	tok := ti.Token(t, nil)
	ti.SetDown(true)

	svc, stop := run()
	defer stop()
	if res, err := svc.Authenticator().Authenticate(context.Background(), tok); err != nil || res.User.Name != "alice@example.com" {
		t.Fatalf("the first token after the restart, the issuer down: %+v %v", res.User, err)
	}
	var line webhook.CheckResult
	for _, r := range svc.readiness() {
		if r.Name == "issuer "+ti.URL {
			line = r
		}
	}
	if !line.OK || !strings.Contains(line.Detail, "from the previous run") {
		t.Fatalf("/readyz issuer line: %+v", line)
	}
}

// With KeepState and the Kubernetes API unreachable, the service serves the mapping the
// previous run accepted, and says so, until the ConfigMap can be read.
func TestStartServesTheKeptMappingBeforeTheAPIAnswers(t *testing.T) {
	ti := issuertest.New(t)
	dir := t.TempDir()
	h := &reloadHarness{path: filepath.Join(dir, "config.yaml"), state: filepath.Join(dir, "state"), logs: &lockedBuffer{}}
	h.write(t, h.configYAML("", issuerYAML(ti, "kubernetes"))+"mapping: {configMap: kube-system/oidc-auth}\n")
	// What a previous run accepted from the ConfigMap.
	previous := mapping.NewStore(mapping.StoreOptions{
		Issuers: []string{ti.URL}, PersistFile: filepath.Join(h.state, "cache", "mapping.json"), PersistSubject: "ConfigMap kube-system/oidc-auth",
	})
	previous.Update(mapping.Snapshot{Data: map[string]string{mapping.KeyUsers: "- email: alice@example.com\n  username: alice\n  groups: [admins]\n"}, Version: "42"})
	// A kubeconfig whose API server refuses connections.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kc := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n" +
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(h.path)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(h.logs, nil)), ConfigFile: h.path, KeepState: true, Kubeconfig: kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waitIssuers := svc.StartIssuers(ctx)
	_, waitMapping := svc.StartMapping(ctx)
	defer func() { cancel(); waitMapping(); waitIssuers() }()
	waitReady(t, svc.Issuers()[0])

	res, err := svc.Authenticator().Authenticate(context.Background(), ti.Token(t, nil))
	if err != nil || res.User.Name != "alice" || !slices.Contains(res.User.Groups, "admins") {
		t.Fatalf("before the API answers: %+v %v", res.User, err)
	}
	var line webhook.CheckResult
	for _, r := range svc.readiness() {
		if strings.HasPrefix(r.Name, "mapping ") {
			line = r
		}
	}
	if !line.OK || !strings.Contains(line.Detail, "version 42 from the previous run") {
		t.Fatalf("/readyz mapping line: %+v", line)
	}
	if !strings.Contains(h.logs.String(), "serving the identity mapping of the previous run") {
		t.Fatalf("not logged:\n%s", h.logs.String())
	}
}
