package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/login/tokencache"
	"github.com/oidc-authenticator/oidc-authenticator/test/dex"
)

// envRunMain makes the test binary run main(): tests start it as a process of its own, as
// kubectl starts an exec credential plugin.
const envRunMain = "OIDC_AUTHENTICATOR_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// publicClient is the client command-line tools use: no secret, any loopback redirect port.
var publicClient = dex.Client{ID: "kubectl", Public: true}

// issuer is a Dex for login tests, with a token cache of its own.
type issuer struct {
	*dex.Server
	cacheDir string
}

func startIssuer(t *testing.T, opts dex.Options) issuer {
	t.Helper()
	opts.ExtraClients = append(opts.ExtraClients, publicClient)
	return issuer{Server: dex.StartForTest(t, opts), cacheDir: filepath.Join(t.TempDir(), "cache")}
}

// tokenArgs are the arguments of `token` for the confidential client, plus extra.
func (d issuer) tokenArgs(extra ...string) []string {
	return append([]string{"token", "--issuer-url", d.IssuerURL, "--client-id", d.ClientID, "--client-secret", d.ClientSecret,
		"--certificate-authority", d.CAFile, "--token-cache-dir", d.cacheDir, "--skip-open-browser"}, extra...)
}

// publicArgs are the arguments of `token` for the public client, plus extra.
func (d issuer) publicArgs(extra ...string) []string {
	return append([]string{"token", "--issuer-url", d.IssuerURL, "--client-id", publicClient.ID,
		"--certificate-authority", d.CAFile, "--token-cache-dir", d.cacheDir, "--skip-open-browser", "--listen-address", "127.0.0.1:0"}, extra...)
}

func (d issuer) tokenRequests(t *testing.T) int {
	t.Helper()
	n, err := d.Requests(context.Background(), "/token")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var alicePassword = []string{"--grant-type", "password", "--username", "alice@example.com", "--password", "alice-password"}

// runToken runs the command in this process and returns its standard output and error apart.
func runToken(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// credential is a decoded ExecCredential.
type credential struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Status     struct {
		Token               string    `json:"token"`
		ExpirationTimestamp time.Time `json:"expirationTimestamp"`
	} `json:"status"`
}

func decodeCredential(t *testing.T, stdout string) credential {
	t.Helper()
	var c credential
	if err := json.Unmarshal([]byte(stdout), &c); err != nil {
		t.Fatalf("standard output is not an ExecCredential: %v\n%s", err, stdout)
	}
	return c
}

func claims(t *testing.T, token string) map[string]any {
	t.Helper()
	c, err := dex.UnverifiedClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The password grant prints exactly the ExecCredential kubectl expects, in the version it
// asks for, and caches the tokens in a private file.
func TestTokenPasswordGrant(t *testing.T) {
	d := startIssuer(t, dex.Options{})
	before := d.tokenRequests(t)
	stdout, stderr, err := runToken(t, d.tokenArgs(alicePassword...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if got := d.tokenRequests(t) - before; got != 1 {
		t.Errorf("%d requests to Dex's token endpoint, want 1", got)
	}
	token := decodeCredential(t, stdout).Status.Token
	c := claims(t, token)
	if c["email"] != "alice@example.com" || c["aud"] != d.ClientID || c["iss"] != d.IssuerURL {
		t.Errorf("id_token claims %v", c)
	}
	exp := time.Unix(int64(c["exp"].(float64)), 0).UTC().Format(time.RFC3339)
	for _, v := range []struct{ execInfo, apiVersion string }{
		{"", "client.authentication.k8s.io/v1"},
		{`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`, "client.authentication.k8s.io/v1"},
		{`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}`, "client.authentication.k8s.io/v1beta1"},
	} {
		t.Setenv("KUBERNETES_EXEC_INFO", v.execInfo)
		stdout, stderr, err := runToken(t, d.tokenArgs(alicePassword...)...) // from the cache
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		want := `{"kind":"ExecCredential","apiVersion":"` + v.apiVersion + `","spec":{"interactive":false},"status":{"expirationTimestamp":"` + exp + `","token":"` + token + `"}}` + "\n"
		if stdout != want {
			t.Errorf("KUBERNETES_EXEC_INFO=%s:\ngot  %s\nwant %s", v.execInfo, stdout, want)
		}
	}

	files, err := filepath.Glob(filepath.Join(d.cacheDir, "*.json"))
	if err != nil || len(files) != 1 {
		t.Fatalf("cache files %v %v, want one", files, err)
	}
	for path, want := range map[string]os.FileMode{d.cacheDir: 0o700, files[0]: 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, st.Mode().Perm(), err, want)
		}
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), token) || !strings.Contains(string(b), `"refresh_token":"`) {
		t.Errorf("the cache file lacks the id_token or the refresh token")
	}
}

// A fresh cached id_token is printed without any request to Dex, even with Dex gone.
func TestTokenCacheHitMakesNoRequest(t *testing.T) {
	d := startIssuer(t, dex.Options{})
	first, stderr, err := runToken(t, d.tokenArgs(alicePassword...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	before, err := d.AllRequests(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	again, stderr, err := runToken(t, d.tokenArgs("--grant-type", "password", "--username", "alice@example.com")...) // no password needed
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	after, err := d.AllRequests(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if again != first || after != before {
		t.Errorf("second run: same credential %t, Dex requests %d -> %d; want the cached credential and no request", again == first, before, after)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	offline, stderr, err := runToken(t, d.tokenArgs("--grant-type", "password", "--username", "alice@example.com")...)
	if err != nil || offline != first {
		t.Errorf("with Dex stopped: %v %s", err, stderr)
	}
}

// A cached id_token with less than a minute left is refreshed with the refresh token (no
// password needed); --force-refresh refreshes a fresh one; a refused refresh token leads to a
// new login.
func TestTokenRefresh(t *testing.T) {
	ctx := t.Context()
	t.Run("short-lived id_token", func(t *testing.T) {
		d := startIssuer(t, dex.Options{IDTokenExpiry: 30 * time.Second})
		first, stderr, err := runToken(t, d.tokenArgs(alicePassword...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		before := d.tokenRequests(t)
		second, stderr, err := runToken(t, d.tokenArgs("--grant-type", "password", "--username", "alice@example.com")...)
		if err != nil {
			t.Fatalf("refresh without a password: %v\n%s", err, stderr)
		}
		if got := d.tokenRequests(t) - before; got != 1 {
			t.Errorf("%d token requests for the refresh, want 1", got)
		}
		a, b := decodeCredential(t, first).Status, decodeCredential(t, second).Status
		if a.Token == b.Token || !b.ExpirationTimestamp.After(a.ExpirationTimestamp.Add(-time.Second)) {
			t.Errorf("refresh gave the same token or an older expiry: %v then %v", a.ExpirationTimestamp, b.ExpirationTimestamp)
		}
		if claims(t, b.Token)["email"] != "alice@example.com" {
			t.Errorf("refreshed token claims %v", claims(t, b.Token))
		}
	})
	t.Run("force-refresh", func(t *testing.T) {
		d := startIssuer(t, dex.Options{})
		first, stderr, err := runToken(t, d.tokenArgs(alicePassword...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		before := d.tokenRequests(t)
		second, stderr, err := runToken(t, d.tokenArgs("--grant-type", "password", "--username", "alice@example.com", "--force-refresh")...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		if second == first || d.tokenRequests(t)-before != 1 {
			t.Errorf("--force-refresh: new credential %t, %d token requests; want a new one from one request", second != first, d.tokenRequests(t)-before)
		}
	})
	t.Run("refused refresh token", func(t *testing.T) {
		d := startIssuer(t, dex.Options{IDTokenExpiry: 30 * time.Second})
		old, err := d.PasswordGrant(ctx, "alice@example.com", "alice-password")
		if err != nil {
			t.Fatal(err)
		}
		key := tokencache.Key{IssuerURL: d.IssuerURL, ClientID: d.ClientID, Scopes: parseScopes(defaultScopes), Username: "alice@example.com"}
		if err := tokencache.Dir(d.cacheDir).Save(key, tokencache.Entry{IDToken: old.IDToken, RefreshToken: "revoked"}); err != nil {
			t.Fatal(err)
		}
		before := d.tokenRequests(t)
		stdout, stderr, err := runToken(t, d.tokenArgs(alicePassword...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		if !strings.Contains(stderr, "did not refresh the token") || d.tokenRequests(t)-before != 2 {
			t.Errorf("want a refused refresh then a password login (2 token requests, got %d); stderr: %s", d.tokenRequests(t)-before, stderr)
		}
		if decodeCredential(t, stdout).Status.Token == old.IDToken {
			t.Error("the old id_token was printed")
		}
	})
}

// plugin runs the test binary as oidc-authenticator in a process of its own.
func plugin(ctx context.Context, env []string, args ...string) (stdout, stderr string, exitCode int, err error) {
	self, err := os.Executable()
	if err != nil {
		return "", "", 0, err
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = append(append(os.Environ(), envRunMain+"=1"), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode(), nil
	}
	return out.String(), errOut.String(), 0, err
}

// Eight plugin processes started at once with an empty cache log in once and print the same token.
func TestTokenParallelProcessesLogInOnce(t *testing.T) {
	d := startIssuer(t, dex.Options{})
	before := d.tokenRequests(t)
	const n = 8
	outs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stdout, stderr, code, err := plugin(t.Context(), nil, d.tokenArgs(alicePassword...)...)
			if err == nil && code != 0 {
				err = fmt.Errorf("exit %d: %s", code, stderr)
			}
			outs[i], errs[i] = stdout, err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("process %d: %v", i, errs[i])
		}
		if outs[i] != outs[0] {
			t.Errorf("process %d printed another credential than process 0", i)
		}
	}
	if got := d.tokenRequests(t) - before; got != 1 {
		t.Errorf("%d processes made %d token requests, want 1", n, got)
	}
}

// lines feeds what a command writes to standard error to a channel, line by line.
type lines struct {
	w  *io.PipeWriter
	ch chan string
}

func newLines() lines {
	r, w := io.Pipe()
	l := lines{w: w, ch: make(chan string, 100)}
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			l.ch <- s.Text()
		}
		close(l.ch)
	}()
	return l
}

// find returns the first submatch of re in the lines, or fails the test.
func (l lines) find(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	var seen []string
	for line := range l.ch {
		if m := re.FindStringSubmatch(line); m != nil {
			return m[1]
		}
		seen = append(seen, line)
	}
	t.Fatalf("no line matches %s:\n%s", re, strings.Join(seen, "\n"))
	return ""
}

// startToken runs the command in this process in the background; wait returns its standard
// output and error.
func startToken(args ...string) (stderr lines, wait func() (string, error)) {
	cmd := newRootCommand()
	var out bytes.Buffer
	stderr = newLines()
	cmd.SetOut(&out)
	cmd.SetErr(stderr.w)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs(args)
	done := make(chan error, 1)
	go func() {
		err := cmd.ExecuteContext(context.Background())
		stderr.w.Close()
		done <- err
	}()
	return stderr, func() (string, error) {
		err := <-done
		return out.String(), err
	}
}

// The authorization code flow with PKCE, end to end: the URL the command prints is opened by
// a test client that logs in through Dex's form and follows Dex's redirect to the command's
// loopback server.
func TestTokenAuthorizationCode(t *testing.T) {
	d := startIssuer(t, dex.Options{})
	stderr, wait := startToken(d.publicArgs("--grant-type", "authcode")...)
	authURL := stderr.find(t, regexp.MustCompile(`^\s+(https://\S+)$`))
	if !strings.Contains(authURL, "code_challenge_method=S256") || !strings.Contains(authURL, "redirect_uri=http%3A%2F%2F127.0.0.1%3A") {
		t.Errorf("the login URL lacks PKCE or the loopback redirect: %s", authURL)
	}
	page, err := d.LogIn(t.Context(), authURL, "alice@example.com", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, "Logged in") {
		t.Errorf("the loopback server's page does not say the login worked:\n%s", page)
	}
	stdout, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	c := claims(t, decodeCredential(t, stdout).Status.Token)
	if c["email"] != "alice@example.com" || c["aud"] != publicClient.ID {
		t.Errorf("claims %v", c)
	}
	// The refresh token was cached: the next run needs no browser.
	if again, stderr, err := runToken(t, d.publicArgs("--grant-type", "authcode", "--force-refresh")...); err != nil || again == stdout {
		t.Errorf("refresh after the authorization code flow: %v %s", err, stderr)
	}
}

// The loopback server ignores a redirect that does not carry the login's state, and reports an
// error the issuer redirects with, in the browser and on the command line.
func TestTokenAuthorizationCodeRedirects(t *testing.T) {
	d := startIssuer(t, dex.Options{})
	stderr, wait := startToken(d.publicArgs("--grant-type", "authcode")...)
	authURL, err := url.Parse(stderr.find(t, regexp.MustCompile(`^\s+(https://\S+)$`)))
	if err != nil {
		t.Fatal(err)
	}
	redirect := authURL.Query().Get("redirect_uri")
	get := func(query url.Values) (int, string) {
		t.Helper()
		resp, err := http.Get(redirect + "?" + query.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(url.Values{"state": {"forged"}, "code": {"stolen"}}); code != http.StatusBadRequest || !strings.Contains(body, "state does not match") {
		t.Errorf("a redirect with another state: HTTP %d %s", code, body)
	}
	code, body := get(url.Values{"state": {authURL.Query().Get("state")}, "error": {"access_denied"}, "error_description": {"the user said no"}})
	if code != http.StatusUnauthorized || !strings.Contains(body, "Login failed") || !strings.Contains(body, "the user said no") {
		t.Errorf("a redirect with an error: HTTP %d %s", code, body)
	}
	if _, err := wait(); err == nil || !strings.Contains(err.Error(), "the login in the browser failed: the issuer answered access_denied: the user said no") {
		t.Errorf("the command's error: %v", err)
	}
}

// The device code flow, end to end, chosen by --grant-type auto when there is no username and
// no browser: the test client opens the URL the command prints and logs in, while the command
// polls Dex.
func TestTokenDeviceCode(t *testing.T) {
	d := startIssuer(t, dex.Options{})
	stderr, wait := startToken(d.publicArgs("--grant-type", "auto")...)
	verifyURL := stderr.find(t, regexp.MustCompile(`open (https://\S+/device\?user_code=\S+) in a browser`))
	page, err := d.LogIn(t.Context(), verifyURL, "alice@example.com", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, "Login Successful") {
		t.Errorf("Dex's last page:\n%s", page)
	}
	stdout, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if c := claims(t, decodeCredential(t, stdout).Status.Token); c["email"] != "alice@example.com" || c["aud"] != publicClient.ID {
		t.Errorf("claims %v", c)
	}
}

// Failures end with one line on standard error naming the problem, exit status 1, nothing on
// standard output, and never the password or the client secret.
func TestTokenErrorsAreOneLineForHumans(t *testing.T) {
	d := startIssuer(t, dex.Options{})
	noPassword := startIssuer(t, dex.Options{GrantTypes: []string{"authorization_code", "refresh_token"}})
	unreachable := "https://127.0.0.1:1/dex"
	for _, c := range []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"wrong password", d.tokenArgs("--grant-type", "password", "--username", "alice@example.com", "--password", "not-alices-secret"),
			nil, []string{"wrong username or password for alice@example.com", "Invalid username or password"}},
		{"wrong password from OIDC_PASSWORD", d.tokenArgs("--grant-type", "password", "--username", "alice@example.com"),
			[]string{"OIDC_PASSWORD=not-alices-secret"}, []string{"wrong username or password for alice@example.com"}},
		{"no password and no terminal", d.tokenArgs("--grant-type", "password", "--username", "alice@example.com"),
			nil, []string{"no password for alice@example.com: pass --password, set OIDC_PASSWORD, or run on a terminal"}},
		{"grant the issuer does not offer", noPassword.tokenArgs(alicePassword...),
			nil, []string{"does not offer the password grant; its discovery document offers: authorization_code, refresh_token"}},
		{"unreachable issuer", []string{"token", "--issuer-url", unreachable, "--client-id", "kubernetes", "--client-secret", "kubernetes-secret",
			"--token-cache-dir", t.TempDir(), "--username", "alice@example.com", "--password", "not-alices-secret"},
			nil, []string{"cannot reach the issuer " + unreachable, "connection refused"}},
		{"untrusted certificate", slicesWithout(d.tokenArgs(alicePassword...), "--certificate-authority", d.CAFile),
			nil, []string{"the certificate of " + strings.TrimSuffix(strings.TrimPrefix(d.IssuerURL, "https://"), "/dex") + " is not trusted", "--certificate-authority"}},
		{"wrong issuer URL", append(d.tokenArgs(alicePassword...), "--issuer-url", d.IssuerURL+"/"),
			nil, []string{"calls itself \"" + d.IssuerURL + "\""}},
		{"unknown grant type", d.tokenArgs("--grant-type", "implicit"),
			nil, []string{`--grant-type "implicit": want one of auto, authcode, device-code, password`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code, err := plugin(t.Context(), c.env, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", stderr)
			if code != 1 || stdout != "" {
				t.Errorf("exit status %d, standard output %q; want 1 and nothing", code, stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "error: ") {
				t.Errorf("standard error is not one line starting with \"error: \":\n%s", stderr)
			}
			for _, want := range c.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("standard error lacks %q:\n%s", want, stderr)
				}
			}
			for _, secret := range []string{"not-alices-secret", "alice-password", d.ClientSecret, "goroutine", "panic"} {
				if strings.Contains(stderr, secret) {
					t.Errorf("standard error shows %q:\n%s", secret, stderr)
				}
			}
		})
	}
}

// slicesWithout returns args without the flag and value given.
func slicesWithout(args []string, flag, value string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == flag && i+1 < len(args) && args[i+1] == value {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

func TestTokenClean(t *testing.T) {
	d := startIssuer(t, dex.Options{})
	if _, stderr, err := runToken(t, d.tokenArgs(alicePassword...)...); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	stdout, _, err := runToken(t, "token", "clean", "--token-cache-dir", d.cacheDir)
	if err != nil || !strings.Contains(stdout, "removed "+d.cacheDir) {
		t.Fatalf("clean: %v %s", err, stdout)
	}
	if _, err := os.Stat(d.cacheDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cache directory is still there: %v", err)
	}
	before := d.tokenRequests(t)
	if _, stderr, err := runToken(t, d.tokenArgs(alicePassword...)...); err != nil || d.tokenRequests(t) != before+1 {
		t.Errorf("after clean the next run must log in again: %v %s", err, stderr)
	}
}
