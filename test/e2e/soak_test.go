//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/oidc-authenticator/oidc-authenticator/test/dex"
)

// The operations soak (issue 15): a steady stream of logins through kube-apiserver while an
// operator does, one after the other, every routine operation. Each phase counts what was
// sent and how it ended; a valid token refused or any wrong answer fails the run.
//
// Run it with `make soak`. SOAK_PHASE_SECONDS sets how long the load runs after each
// operation (default 20), SOAK_RATE the requests per second (default 25).

// expectation is what a class of tokens must get in the current phase.
type expectation int32

const (
	expectAccepted expectation = iota
	expectRefused
	paused // not sent: its verdict is changing
)

// tokenClass is a set of tokens of one user of one issuer, and what they must get.
type tokenClass struct {
	name   string
	user   string   // the username kube-apiserver must report
	groups []string // groups it must report (mapped ones included)
	expect atomic.Int32
	mu     sync.Mutex
	tokens []string
	next   int
}

func (c *tokenClass) token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next = (c.next + 1) % len(c.tokens)
	return c.tokens[c.next]
}

func (c *tokenClass) setTokens(tokens []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens, c.next = tokens, 0
}

func (c *tokenClass) setGroups(groups ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups = groups
}

func (c *tokenClass) want() (string, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user, c.groups
}

// tally counts the requests of one phase.
type tally struct {
	sent, accepted, refused, wrong, failed atomic.Int64
	mu                                     sync.Mutex
	samples                                []string // the first few wrong or failed answers
}

func (t *tally) bad(kind *atomic.Int64, format string, args ...any) {
	kind.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.samples) < 5 {
		t.samples = append(t.samples, fmt.Sprintf(format, args...))
	}
}

// soak is the running soak: the world it drives and the load it sends.
type soak struct {
	w       *world
	client  *http.Client
	classes []*tokenClass
	current atomic.Pointer[tally]
	issuers []*dex.Server // the issuers in the webhook's configuration file now
	cfgPath string
}

type soakPhase struct {
	name string
	// do is the operator's action; it returns once its effect is observed.
	do func(s *soak) error
}

func TestSoak(t *testing.T) {
	w := newWorld(t, "soak")
	dir := w.dir
	ctx := context.Background()
	startDex := func(name string, port int) *dex.Server {
		d, err := dex.Start(ctx, dex.Options{Users: users(), Dir: filepath.Join(dir, name), Port: port, KeysRotationPeriod: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	w.dex = startDex("dex", 0)
	added := startDex("dex-added", 0)
	t.Cleanup(func() { w.dex.Stop(); added.Stop() })

	s := &soak{w: w, issuers: []*dex.Server{w.dex}}
	w.version = "v1"
	s.setUp()

	alice := &tokenClass{name: "alice (trusted issuer)", user: "alice@example.com", groups: []string{"e2e-admins", "dev-team"}}
	carolMain := &tokenClass{name: "carol (trusted issuer)", user: "carol@example.com"}
	carol := &tokenClass{name: "carol (added, then removed issuer)", user: "carol@example.com"}
	carol.expect.Store(int32(paused))
	alice.setTokens(s.tokens(w.dex, "alice@example.com", 20))
	carolMain.setTokens(s.tokens(w.dex, "carol@example.com", 20))
	carol.setTokens(s.tokens(added, "carol@example.com", 20))
	s.classes = []*tokenClass{alice, carolMain, carol}

	phases := []soakPhase{
		{"steady load", func(*soak) error { return nil }},
		{"issuer added to the config file", func(s *soak) error {
			s.writeConfig(append(slices.Clone(s.issuers), added))
			return s.until(carol, expectAccepted)
		}},
		{"broken config edit refused", func(s *soak) error {
			return s.brokenConfig()
		}},
		{"issuer removed from the config file", func(s *soak) error {
			s.writeConfig([]*dex.Server{w.dex})
			return s.until(carol, expectRefused)
		}},
		{"webhook process replaced", func(s *soak) error { return s.replaceWebhook() }},
		{"Dex restarted with new keys", func(s *soak) error {
			port := mustPort(t, w.dex.IssuerURL)
			if err := w.dex.Stop(); err != nil {
				return err
			}
			w.dex = startDex("dex", port)
			alice.setTokens(s.tokens(w.dex, "alice@example.com", 20))
			carolMain.setTokens(s.tokens(w.dex, "carol@example.com", 20))
			return nil
		}},
		{"mapping ConfigMap: valid edit", func(s *soak) error {
			w.applyMapping(initialUsers, initialGroups+"- group: admins\n  groups: [soak-added]\n")
			return s.untilGroup(alice, "soak-added")
		}},
		{"mapping ConfigMap: broken edit refused", func(s *soak) error {
			w.applyMapping("- email: alice@example.com\n  userName: typo\n", initialGroups)
			return s.untilLog("userName")
		}},
		{"serving certificate renewed", func(s *soak) error { return s.renewCertificate() }},
	}
	if only := os.Getenv("SOAK_PHASES"); only != "" {
		phases = slices.DeleteFunc(phases, func(p soakPhase) bool {
			return p.name != "steady load" && !slices.ContainsFunc(strings.Split(only, ","), func(o string) bool { return strings.Contains(p.name, o) })
		})
	}
	seconds := envInt("SOAK_PHASE_SECONDS", 20)
	rate := envInt("SOAK_RATE", 25)

	stop := make(chan struct{})
	var load sync.WaitGroup
	s.current.Store(&tally{})
	load.Go(func() { s.load(rate, stop) })

	type result struct {
		name  string
		took  time.Duration
		tally *tally
		err   error
	}
	var results []result
	for _, p := range phases {
		began := time.Now()
		err := p.do(s)
		t0 := &tally{}
		s.current.Store(t0) // what the action's own window sent is counted in the phase before
		if err == nil {
			time.Sleep(time.Duration(seconds) * time.Second)
		}
		results = append(results, result{p.name, time.Since(began), t0, err})
		if err != nil {
			break
		}
	}
	close(stop)
	load.Wait()

	fmt.Printf("soak: %-42s %6s %8s %8s %6s %6s %7s\n", "phase", "sent", "accepted", "refused", "wrong", "failed", "seconds")
	for _, r := range results {
		fmt.Printf("soak: %-42s %6d %8d %8d %6d %6d %7.1f\n", r.name, r.tally.sent.Load(), r.tally.accepted.Load(),
			r.tally.refused.Load(), r.tally.wrong.Load(), r.tally.failed.Load(), r.took.Seconds())
	}
	for _, r := range results {
		if r.err != nil {
			t.Errorf("%s: %v\nwebhook log tail:\n%s", r.name, r.err, w.webhook.tail(30))
		}
		if r.tally.wrong.Load() > 0 || r.tally.failed.Load() > 0 || r.tally.sent.Load() == 0 {
			t.Errorf("%s: %d sent, %d wrong answers, %d failed valid requests; want some sent, none wrong or failed; first: %s",
				r.name, r.tally.sent.Load(), r.tally.wrong.Load(), r.tally.failed.Load(), strings.Join(r.tally.samples, "; "))
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func mustPort(t *testing.T, issuerURL string) int {
	rest := strings.TrimPrefix(issuerURL, "https://127.0.0.1:")
	port, err := strconv.Atoi(strings.TrimSuffix(rest, "/dex"))
	if err != nil {
		t.Fatalf("the port of %s: %v", issuerURL, err)
	}
	return port
}

// setUp starts kube-apiserver (webhook decisions cached for 1 s only, so that the load
// reaches the webhook), the shipped RBAC, the mapping and the webhook.
func (s *soak) setUp() {
	w := s.w
	t := w.t
	vdir := filepath.Join(w.dir, w.version)
	if err := os.MkdirAll(vdir, 0o700); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	w.webhookPort = port
	w.state = filepath.Join(vdir, "state")
	s.cfgPath = filepath.Join(vdir, "webhook-config.yaml")
	s.init()
	api, err := startAPIServer(w.bins, filepath.Join(vdir, "apiserver"), w.etcdURL,
		filepath.Join(w.state, "apiserver-webhook-kubeconfig.yaml"), w.version)
	if err != nil {
		t.Fatal(err)
	}
	w.api = api
	t.Cleanup(func() {
		w.webhook.stop()
		api.proc.stop()
	})
	ca, err := os.ReadFile(api.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	s.client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 16}}
	w.admin = filepath.Join(vdir, "admin.kubeconfig")
	w.saConfig = filepath.Join(vdir, "webhook-sa.kubeconfig")
	if err := api.kubeconfig(w.admin, map[string]any{"token": api.adminToken}); err != nil {
		t.Fatal(err)
	}
	w.kubectlAdmin("", "apply", "-f", filepath.Join(w.root, "manifests", "serviceaccount.yaml"), "-f", filepath.Join(w.root, "manifests", "rbac.yaml"))
	token := strings.TrimSpace(w.kubectlAdmin("", "create", "token", "oidc-authenticator", "-n", "kube-system", "--duration=2h"))
	if err := api.kubeconfig(w.saConfig, map[string]any{"token": token}); err != nil {
		t.Fatal(err)
	}
	w.applyMapping(initialUsers, initialGroups)
	s.writeConfig(s.issuers)
	w.webhook = s.startWebhook("webhook-1")
	if err := waitHTTP("https://127.0.0.1:"+strconv.Itoa(w.webhookPort)+"/readyz", nil, 30*time.Second, w.webhook); err != nil {
		t.Fatalf("webhook: %v\n%s", err, w.webhook.tail(30))
	}
}

// init runs `oidc-authenticator init` as the DaemonSet's initContainer does.
func (s *soak) init(args ...string) {
	w := s.w
	out, err := runBin(w.bins.authenticator, append([]string{"init", "--state-dir", w.state, "--hostname", "127.0.0.1",
		"--address", fmt.Sprintf("127.0.0.1:%d", w.webhookPort)}, args...)...)
	if err != nil {
		w.t.Fatalf("oidc-authenticator init: %v\n%s", err, out)
	}
}

func (s *soak) startWebhook(name string) *proc {
	w := s.w
	p, err := startProc(name, filepath.Join(w.dir, w.version, name+".log"), w.bins.authenticator,
		"server", "--config", s.cfgPath, "--kubeconfig", w.saConfig)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// writeConfig writes the webhook's configuration file with these issuers, as an operator
// edits it: a new file moved into place.
func (s *soak) writeConfig(issuers []*dex.Server) {
	jwt := make([]any, 0, len(issuers))
	for _, d := range issuers {
		jwt = append(jwt, map[string]any{
			"issuer": map[string]any{"url": d.IssuerURL, "audiences": []string{"kubernetes"}, "certificateAuthority": string(d.CAPEM)},
			"claimMappings": map[string]any{
				"username": map[string]any{"claim": "email", "prefix": ""},
				"groups":   map[string]any{"claim": "groups", "prefix": "oidc:"},
				"uid":      map[string]any{"claim": "sub"},
			},
		})
	}
	s.issuers = issuers
	s.writeConfigDoc(map[string]any{
		"apiVersion": "oidc-authenticator.io/v1alpha1", "kind": "AuthenticatorConfiguration",
		"server":  map[string]any{"address": "127.0.0.1:" + strconv.Itoa(s.w.webhookPort), "stateDir": s.w.state},
		"jwt":     jwt,
		"mapping": map[string]any{"configMap": "kube-system/oidc-auth"},
		"cache":   map[string]any{"ttl": "2m"},
	})
}

func (s *soak) writeConfigDoc(cfg map[string]any) {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		s.w.t.Fatal(err)
	}
	tmp := s.cfgPath + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		s.w.t.Fatal(err)
	}
	if err := os.Rename(tmp, s.cfgPath); err != nil {
		s.w.t.Fatal(err)
	}
}

// brokenConfig writes a configuration the webhook must refuse (an issuer without audiences)
// and waits until it says so; the tokens of every issuer keep their verdicts.
func (s *soak) brokenConfig() error {
	before := strings.Count(s.w.webhook.logText(), "audiences")
	s.writeConfigDoc(map[string]any{
		"apiVersion": "oidc-authenticator.io/v1alpha1", "kind": "AuthenticatorConfiguration",
		"server": map[string]any{"address": "127.0.0.1:" + strconv.Itoa(s.w.webhookPort), "stateDir": s.w.state},
		"jwt":    []any{map[string]any{"issuer": map[string]any{"url": s.w.dex.IssuerURL}, "claimMappings": map[string]any{"username": map[string]any{"claim": "email", "prefix": ""}}}},
	})
	return s.wait(30*time.Second, "the refusal of the broken configuration in the webhook's log", func() error {
		if strings.Count(s.w.webhook.logText(), "audiences") <= before {
			return fmt.Errorf("no new log line names the missing audiences")
		}
		return nil
	})
}

// replaceWebhook does what a rolling update does on one node: a new process starts on the
// same address, and the old one is told to stop once the new one serves.
func (s *soak) replaceWebhook() error {
	old := s.w.webhook
	fresh := s.startWebhook("webhook-2")
	if err := s.wait(60*time.Second, "the new webhook process serving", func() error {
		if fresh.exited() {
			return fmt.Errorf("it exited: %v\n%s", fresh.err, fresh.tail(20))
		}
		if !strings.Contains(fresh.logText(), "serving TokenReviews") {
			return fmt.Errorf("not serving yet")
		}
		return nil
	}); err != nil {
		fresh.stop()
		return err
	}
	s.w.webhook = fresh
	if err := old.stop(); err != nil {
		return fmt.Errorf("the old webhook did not exit cleanly: %w", err)
	}
	return nil
}

// renewCertificate renews the serving certificate as the yearly runbook does and waits
// until the webhook serves the new one.
func (s *soak) renewCertificate() error {
	before, err := s.servingSerial()
	if err != nil {
		return err
	}
	s.init("--renew-within", "87600h")
	return s.wait(60*time.Second, "the renewed serving certificate", func() error {
		now, err := s.servingSerial()
		if err != nil {
			return err
		}
		if now == before {
			return fmt.Errorf("still serving serial %s", now)
		}
		return nil
	})
}

func (s *soak) servingSerial() (string, error) {
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.w.webhookPort), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads the served certificate only
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// until pauses c's load, waits until its tokens get the verdict e, then sends them again.
func (s *soak) until(c *tokenClass, e expectation) error {
	c.expect.Store(int32(paused))
	err := s.wait(60*time.Second, c.name+" "+map[expectation]string{expectAccepted: "accepted", expectRefused: "refused"}[e], func() error {
		code, _, err := s.review(c.token())
		if err != nil {
			return err
		}
		if e == expectAccepted && code != http.StatusCreated || e == expectRefused && code != http.StatusUnauthorized {
			return fmt.Errorf("HTTP %d", code)
		}
		return nil
	})
	if err == nil {
		settle()
		c.expect.Store(int32(e))
	}
	return err
}

// settle waits out kube-apiserver's cache of webhook decisions
// (--authentication-token-webhook-cache-ttl=1s): a change seen by one token is seen by all
// after it.
func settle() { time.Sleep(2 * time.Second) }

// untilGroup pauses c's load until its tokens carry group, then requires it.
func (s *soak) untilGroup(c *tokenClass, group string) error {
	e := c.expect.Swap(int32(paused))
	err := s.wait(60*time.Second, c.name+" in "+group, func() error {
		code, who, err := s.review(c.token())
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("HTTP %d: %v", code, err)
		}
		if !slices.Contains(who.Groups, group) {
			return fmt.Errorf("groups %q", who.Groups)
		}
		return nil
	})
	settle()
	_, groups := c.want()
	c.setGroups(append(groups, group)...)
	c.expect.Store(e)
	return err
}

func (s *soak) untilLog(text string) error {
	before := strings.Count(s.w.webhook.logText(), text)
	return s.wait(60*time.Second, "a log line with "+strconv.Quote(text), func() error {
		if strings.Count(s.w.webhook.logText(), text) <= before {
			return fmt.Errorf("none yet")
		}
		return nil
	})
}

func (s *soak) wait(timeout time.Duration, what string, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %w", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// tokens gets n distinct id_tokens of one user by the password grant.
func (s *soak) tokens(d *dex.Server, email string, n int) []string {
	out := make([]string, 0, n)
	for range n {
		out = append(out, s.w.token(d, email))
	}
	return out
}

// load sends rate requests a second, round robin over the classes that are not paused,
// until stop is closed.
func (s *soak) load(rate int, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	sem := make(chan struct{}, 16)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		c := s.classes[i%len(s.classes)]
		e := expectation(c.expect.Load())
		if e == paused {
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			s.current.Load().bad(&s.current.Load().failed, "more than 16 requests outstanding")
			continue
		}
		t := s.current.Load()
		t.sent.Add(1)
		inflight.Go(func() {
			defer func() { <-sem }()
			s.judge(t, c, e)
		})
	}
}

// judge sends one review with a token of c and counts its outcome in t.
func (s *soak) judge(t *tally, c *tokenClass, e expectation) {
	code, who, err := s.review(c.token())
	user, groups := c.want()
	switch {
	case err != nil:
		t.bad(&t.failed, "%s: %v", c.name, err)
	case e == expectAccepted && code == http.StatusCreated:
		if who.Username != user || slices.ContainsFunc(groups, func(g string) bool { return !slices.Contains(who.Groups, g) }) {
			t.bad(&t.wrong, "%s: accepted as %q in %q; want %q in %q", c.name, who.Username, who.Groups, user, groups)
			return
		}
		t.accepted.Add(1)
	case e == expectRefused && code == http.StatusUnauthorized:
		t.refused.Add(1)
	case e == expectRefused && code == http.StatusCreated:
		t.bad(&t.wrong, "%s: accepted as %q; want it refused", c.name, who.Username)
	default:
		t.bad(&t.failed, "%s: HTTP %d", c.name, code)
	}
}

// review asks kube-apiserver who holds token (a SelfSubjectReview, what kubectl auth whoami
// sends) and returns the HTTP status and the user it reports.
func (s *soak) review(token string) (int, whoami, error) {
	body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	req, err := http.NewRequest(http.MethodPost, s.w.api.url+"/apis/authentication.k8s.io/v1/selfsubjectreviews", bytes.NewReader(body))
	if err != nil {
		return 0, whoami{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, whoami{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, whoami{}, err
	}
	if resp.StatusCode != http.StatusCreated {
		return resp.StatusCode, whoami{}, nil
	}
	who, err := parseWhoami(string(b))
	return resp.StatusCode, who, err
}

// runBin runs a binary and returns its combined output.
func runBin(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}
