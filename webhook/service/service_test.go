package service_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/test/dex"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/pki"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/service"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type running struct {
	url    string
	client *http.Client
	logs   *syncBuffer
}

// runService starts the whole webhook against d, configured as a newcomer would: generated
// certificates, mTLS from the apiserver, username from email, groups prefixed "oidc:".
// extra is appended to the configuration file.
func runService(t *testing.T, d *dex.Server, extra ...string) *running {
	t.Helper()
	state := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfgYAML := `apiVersion: oidc-authenticator.io/v1alpha1
kind: AuthenticatorConfiguration
server:
  address: ` + addr + `
  stateDir: ` + state + `
  clientCAFile: ` + filepath.Join(state, "ca.crt") + `
jwt:
- issuer:
    url: ` + d.IssuerURL + `
    audiences: [` + d.ClientID + `]
    certificateAuthority: |
` + indent(string(d.CAPEM), "      ") + `
  claimMappings:
    username: {claim: email, prefix: ""}
    groups: {claim: groups, prefix: "oidc:"}
    uid: {claim: sub}
` + strings.Join(extra, "")
	files := pki.Files{Dir: state}
	if _, err := pki.Ensure(files, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	svc, err := service.New(cfg, service.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service stopped with %v", err)
		}
		if t.Failed() {
			t.Logf("webhook log:\n%s", logs.String())
		}
	})
	cert, err := tls.LoadX509KeyPair(files.ClientCert(), files.ClientKey())
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.LoadCertPool(files.CACert())
	if err != nil {
		t.Fatal(err)
	}
	r := &running{url: "https://" + addr, logs: logs, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := r.client.Get(r.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook never became ready (last error %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n")
}

type reviewStatus struct {
	Authenticated bool   `json:"authenticated"`
	Error         string `json:"error"`
	User          struct {
		Username string   `json:"username"`
		UID      string   `json:"uid"`
		Groups   []string `json:"groups"`
	} `json:"user"`
}

func (r *running) review(t *testing.T, version, token string) reviewStatus {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"apiVersion": "authentication.k8s.io/" + version, "kind": "TokenReview",
		"spec": map[string]any{"token": token, "audiences": []string{"https://kubernetes.default.svc.cluster.local"}},
	})
	resp, err := r.client.Post(r.url+"/authenticate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	var out struct {
		APIVersion string       `json:"apiVersion"`
		Status     reviewStatus `json:"status"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.APIVersion != "authentication.k8s.io/"+version {
		t.Fatalf("answered in %s", out.APIVersion)
	}
	return out.Status
}

// The seeds' flow against a real Dex: an id_token from the resource-owner password grant
// is accepted with the user and groups the claim mappings promise, in v1 and v1beta1.
func TestDexPasswordGrantTokens(t *testing.T) {
	d := dex.StartForTest(t, dex.Options{})
	r := runService(t, d)
	ctx := context.Background()
	alice, err := d.PasswordGrant(ctx, "alice@example.com", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v1beta1"} {
		st := r.review(t, v, alice.IDToken)
		if !st.Authenticated || st.User.Username != "alice@example.com" ||
			!slices.Equal(st.User.Groups, []string{"oidc:developers", "oidc:admins"}) || st.User.UID == "" {
			t.Fatalf("%s: alice got %+v", v, st)
		}
	}
	bob, err := d.PasswordGrant(ctx, "bob@example.com", "bob-password")
	if err != nil {
		t.Fatal(err)
	}
	if st := r.review(t, "v1", bob.IDToken); st.Authenticated || st.Error != "" {
		t.Fatalf("bob (email not verified) must get a clean deny, got %+v", st)
	}
	if !strings.Contains(r.logs.String(), "reason=email_not_verified") {
		t.Fatalf("the denial reason must be logged:\n%s", r.logs.String())
	}
	// Without the groups scope Dex leaves the claim out: no groups, still a user.
	noGroups, err := d.PasswordGrant(ctx, "alice@example.com", "alice-password", "openid", "email")
	if err != nil {
		t.Fatal(err)
	}
	if st := r.review(t, "v1", noGroups.IDToken); !st.Authenticated || len(st.User.Groups) != 0 {
		t.Fatalf("token without groups: %+v", st)
	}
	if strings.Contains(r.logs.String(), alice.IDToken[:40]) {
		t.Fatal("a token reached the log")
	}
}

// Tokens from an issuer the webhook does not trust are denied cleanly.
func TestDexUnknownIssuer(t *testing.T) {
	trusted := dex.StartForTest(t, dex.Options{})
	other := dex.StartForTest(t, dex.Options{})
	r := runService(t, trusted)
	tok, err := other.PasswordGrant(context.Background(), "alice@example.com", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	if st := r.review(t, "v1", tok.IDToken); st.Authenticated || st.Error != "" {
		t.Fatalf("unknown issuer: %+v", st)
	}
}

func (r *running) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := r.client.Get(r.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// mountConfigMap lays out dir as kubelet mounts a ConfigMap: the files live in a timestamped
// directory, ..data points at it, and each key is a symlink through ..data. Calling it again
// swaps the version atomically, as kubelet does.
func mountConfigMap(t *testing.T, dir string, data map[string]string) {
	t.Helper()
	version := filepath.Join(dir, fmt.Sprintf("..%d", time.Now().UnixNano()))
	if err := os.MkdirAll(version, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(version, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(dir, k)); err != nil {
			if err := os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(version), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// The mapping from a mounted ConfigMap is applied to every review, also to a token served from
// the cache; an edit takes effect within 2 s; a broken edit keeps the previous mapping and
// the refusal shows in /readyz?verbose, the metrics and the log.
func TestMountedMappingReload(t *testing.T) {
	d := dex.StartForTest(t, dex.Options{})
	dir := t.TempDir()
	mountConfigMap(t, dir, map[string]string{
		"mapUsers":  "- email: alice@example.com\n  username: alice\n  groups: [cluster-admins]\n",
		"mapGroups": "- group: developers\n  groups: [dev-team]\n",
	})
	r := runService(t, d, "mapping: {file: "+dir+"}\n")
	alice, err := d.PasswordGrant(context.Background(), "alice@example.com", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"oidc:developers", "oidc:admins", "cluster-admins", "dev-team"}
	if st := r.review(t, "v1", alice.IDToken); !st.Authenticated || st.User.Username != "alice" || !slices.Equal(st.User.Groups, want) {
		t.Fatalf("mapped alice: %+v, want username alice and groups %q", st, want)
	}

	mountConfigMap(t, dir, map[string]string{
		"mapUsers":  "- email: alice@example.com\n  username: alice\n  groups: [viewers]\n",
		"mapGroups": "",
	})
	waitFor(t, 2*time.Second, "the edited mapping", func() bool {
		st := r.review(t, "v1", alice.IDToken) // the same token: its identity is cached, its mapping is not
		return slices.Equal(st.User.Groups, []string{"oidc:developers", "oidc:admins", "viewers"})
	})

	mountConfigMap(t, dir, map[string]string{"mapUsers": "- email: alice@example.com\n  usernme: typo\n", "mapGroups": ""})
	waitFor(t, 3*time.Second, "the refusal in /readyz?verbose", func() bool {
		return strings.Contains(r.get(t, "/readyz?verbose"), "refused")
	})
	readyz := r.get(t, "/readyz?verbose")
	if !strings.Contains(readyz, "[+]mapping file "+dir+" ok: version ") || !strings.Contains(readyz, "mapUsers[0].usernme") {
		t.Errorf("/readyz?verbose does not say which version is in force and why the newest was refused:\n%s", readyz)
	}
	if st := r.review(t, "v1", alice.IDToken); st.User.Username != "alice" || !slices.Contains(st.User.Groups, "viewers") {
		t.Errorf("after a broken edit the previous mapping must stay in force: %+v", st)
	}
	metrics := r.get(t, "/metrics")
	for _, want := range []string{`oidc_authenticator_mapping_reloads_total{result="success"} 2`, `oidc_authenticator_mapping_reloads_total{result="rejected"} 1`,
		`oidc_authenticator_mapping_reload_duration_seconds_count{result="success"} 2`, `oidc_authenticator_mapping_reload_duration_seconds_count{result="rejected"} 1`,
		`oidc_authenticator_mapping_entries{kind="user_email"} 1`, `oidc_authenticator_mapping_entries{kind="group"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(r.logs.String(), "level=ERROR") || !strings.Contains(r.logs.String(), "usernme") {
		t.Errorf("the refusal is not logged as an error naming the field:\n%s", r.logs.String())
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Expressions end to end, with a real Dex: a claim validation rule, mapping entries matched
// by expression, and a user validation rule that judges the user after the mapping, so that
// a mapping edit can make it refuse a token it accepted before.
func TestDexExpressions(t *testing.T) {
	d := dex.StartForTest(t, dex.Options{})
	dir := t.TempDir()
	staff := "- expression: \"claims.email_verified == true && claims.email.endsWith('@example.com')\"\n  groups: [example-staff]\n"
	mountConfigMap(t, dir, map[string]string{"mapGroups": staff})
	r := runService(t, d, `  claimValidationRules:
  - expression: "claims.?email_verified.orValue(false) == true"
    message: verified emails only
  userValidationRules:
  - expression: "!('blocked' in user.groups)"
    message: blocked by the mapping
mapping: {file: `+dir+"}\n")
	ctx := context.Background()
	alice, err := d.PasswordGrant(ctx, "alice@example.com", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"oidc:developers", "oidc:admins", "example-staff"}
	if st := r.review(t, "v1", alice.IDToken); !st.Authenticated || !slices.Equal(st.User.Groups, want) {
		t.Fatalf("alice: %+v, want groups %q", st, want)
	}
	bob, err := d.PasswordGrant(ctx, "bob@example.com", "bob-password")
	if err != nil {
		t.Fatal(err)
	}
	if st := r.review(t, "v1", bob.IDToken); st.Authenticated || st.Error != "" {
		t.Fatalf("bob (email not verified) must get a clean deny, got %+v", st)
	}
	if !strings.Contains(r.logs.String(), "reason=claim_rule_failed") || !strings.Contains(r.logs.String(), "verified emails only") {
		t.Fatalf("the claim rule's denial is not logged with its message:\n%s", r.logs.String())
	}

	mountConfigMap(t, dir, map[string]string{"mapGroups": staff + "- expression: \"claims.sub != ''\"\n  groups: [blocked]\n"})
	waitFor(t, 3*time.Second, "the user rule refusing the newly mapped group", func() bool {
		return !r.review(t, "v1", alice.IDToken).Authenticated
	})
	if !strings.Contains(r.logs.String(), "reason=user_rule_failed") || !strings.Contains(r.logs.String(), "blocked by the mapping") {
		t.Fatalf("the user rule's denial is not logged with its message:\n%s", r.logs.String())
	}
}
