package authcode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidc-authenticator/oidc-authenticator/login/provider"
)

// fakeIssuer is an authorization server: AuthCodeURL builds the real URL with oauth2, and
// Exchange posts to an httptest token endpoint that checks the code, the redirect URI and the
// PKCE verifier against the challenge of that URL.
type fakeIssuer struct {
	t        *testing.T
	token    *httptest.Server
	mu       sync.Mutex
	authURL  *url.URL
	verified string // the nonce Verify was given
	badNonce bool   // Verify refuses
}

func newFakeIssuer(t *testing.T) *fakeIssuer {
	f := &fakeIssuer{t: t}
	f.token = httptest.NewServer(http.HandlerFunc(f.serveToken))
	t.Cleanup(f.token.Close)
	return f
}

func (f *fakeIssuer) config(redirectURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    "kubernetes",
		RedirectURL: redirectURL,
		Endpoint:    oauth2.Endpoint{AuthURL: "https://issuer.example.com/auth", TokenURL: f.token.URL + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

func (f *fakeIssuer) IssuerURL() string { return "https://issuer.example.com" }

func (f *fakeIssuer) AuthCodeURL(redirectURL, state string, opts ...oauth2.AuthCodeOption) string {
	s := f.config(redirectURL).AuthCodeURL(state, opts...)
	u, err := url.Parse(s)
	if err != nil {
		f.t.Error(err)
	}
	f.mu.Lock()
	f.authURL = u
	f.mu.Unlock()
	return s
}

func (f *fakeIssuer) Exchange(ctx context.Context, redirectURL, code string, opts ...oauth2.AuthCodeOption) (*oauth2.Token, error) {
	return f.config(redirectURL).Exchange(ctx, code, opts...)
}

func (f *fakeIssuer) Verify(_ context.Context, tok *oauth2.Token, nonce string) (provider.IDToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verified = nonce
	if f.badNonce || nonce != f.authURL.Query().Get("nonce") {
		return provider.IDToken{}, errors.New("the id_token the issuer sent does not carry this login's nonce")
	}
	return provider.IDToken{Raw: tok.Extra("id_token").(string)}, nil
}

func (f *fakeIssuer) serveToken(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	q := f.authURL.Query()
	f.mu.Unlock()
	sum := sha256.Sum256([]byte(r.FormValue("code_verifier")))
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.FormValue("code") != "the-code":
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_grant","error_description":"unknown code"}`)
	case r.FormValue("redirect_uri") != q.Get("redirect_uri"):
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_grant","error_description":"redirect_uri differs"}`)
	case q.Get("code_challenge_method") != "S256" || base64.RawURLEncoding.EncodeToString(sum[:]) != q.Get("code_challenge"):
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_grant","error_description":"PKCE verification failed"}`)
	default:
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": "the-id-token", "expires_in": 300})
	}
}

// browserVisit is what the browser saw at the loopback redirect.
type browserVisit struct {
	status int
	body   string
}

// browser follows the login URL the flow opens as an issuer would after the user logged in:
// it calls the redirect URI with the query that query makes from the URL's state.
func browser(t *testing.T, query func(state string) url.Values, visits chan<- browserVisit) func(string) error {
	return func(authURL string) error {
		u, err := url.Parse(authURL)
		if err != nil {
			return err
		}
		redirect := u.Query().Get("redirect_uri")
		go func() {
			resp, err := http.Get(redirect + "?" + query(u.Query().Get("state")).Encode())
			if err != nil {
				t.Error(err)
				visits <- browserVisit{}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			visits <- browserVisit{status: resp.StatusCode, body: string(b)}
		}()
		return nil
	}
}

func login(t *testing.T, is *fakeIssuer, open func(string) error) (*oauth2.Token, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var msgs bytes.Buffer
	tok, err := Flow{ListenAddress: "127.0.0.1:0", OpenBrowser: open, Messages: &msgs}.Login(ctx, is)
	return tok, msgs.String(), err
}

// Rule: the login URL carries a loopback redirect, a state, a nonce and an S256 PKCE
// challenge; the code the redirect brings is exchanged with the verifier for the same
// redirect URI, the id_token is checked with the nonce, and the browser says it worked.
func TestFlowLogsIn(t *testing.T) {
	is := newFakeIssuer(t)
	visits := make(chan browserVisit, 1)
	tok, msgs, err := login(t, is, browser(t, func(state string) url.Values {
		return url.Values{"state": {state}, "code": {"the-code"}}
	}, visits))
	if err != nil {
		t.Fatalf("%v\n%s", err, msgs)
	}
	if tok.Extra("id_token") != "the-id-token" {
		t.Errorf("token %+v", tok)
	}
	q := is.authURL.Query()
	redirect, _ := url.Parse(q.Get("redirect_uri"))
	if redirect.Scheme != "http" || redirect.Hostname() != "127.0.0.1" || redirect.Path != "/callback" || redirect.Port() == "0" {
		t.Errorf("redirect_uri %s", redirect)
	}
	if q.Get("state") == "" || q.Get("nonce") == "" || is.verified != q.Get("nonce") {
		t.Errorf("state %q, nonce %q, verified with %q", q.Get("state"), q.Get("nonce"), is.verified)
	}
	if !strings.Contains(msgs, "Log in at https://issuer.example.com in a browser:\n  https://issuer.example.com/auth?") {
		t.Errorf("messages: %q", msgs)
	}
	if v := <-visits; v.status != http.StatusOK || !strings.Contains(v.body, "Logged in") {
		t.Errorf("browser saw %d %q", v.status, v.body)
	}
}

// Rule: a redirect with another state (an old tab, a forged request) is turned away with 400
// and the flow keeps waiting for the right one.
func TestFlowIgnoresOtherState(t *testing.T) {
	is := newFakeIssuer(t)
	visits := make(chan browserVisit, 2)
	open := func(authURL string) error {
		u, _ := url.Parse(authURL)
		redirect, state := u.Query().Get("redirect_uri"), u.Query().Get("state")
		go func() {
			for _, s := range []string{"forged", state} {
				resp, err := http.Get(redirect + "?" + url.Values{"state": {s}, "code": {"the-code"}}.Encode())
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				visits <- browserVisit{status: resp.StatusCode, body: string(b)}
			}
		}()
		return nil
	}
	if _, _, err := login(t, is, open); err != nil {
		t.Fatal(err)
	}
	if v := <-visits; v.status != http.StatusBadRequest || !strings.Contains(v.body, "state does not match") {
		t.Errorf("forged redirect: %d %q", v.status, v.body)
	}
	if v := <-visits; v.status != http.StatusOK {
		t.Errorf("right redirect: %d %q", v.status, v.body)
	}
}

// Rule: an error the issuer redirects with, a code the token endpoint refuses, and an id_token
// without this login's nonce each fail the login with the reason, shown in the browser too.
func TestFlowFailures(t *testing.T) {
	tests := []struct {
		name     string
		query    func(state string) url.Values
		badNonce bool
		want     string
	}{
		{"error redirect", func(s string) url.Values {
			return url.Values{"state": {s}, "error": {"access_denied"}, "error_description": {"The user said no"}}
		}, false, "the login in the browser failed: the issuer answered access_denied: The user said no"},
		{"no code", func(s string) url.Values { return url.Values{"state": {s}} }, false,
			"the issuer redirected without an authorization code"},
		{"code refused", func(s string) url.Values { return url.Values{"state": {s}, "code": {"stale"}} }, false,
			"the issuer refused the authorization code: the issuer answered invalid_grant: unknown code"},
		{"nonce", func(s string) url.Values { return url.Values{"state": {s}, "code": {"the-code"}} }, true,
			"the id_token the issuer sent does not carry this login's nonce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := newFakeIssuer(t)
			is.badNonce = tt.badNonce
			visits := make(chan browserVisit, 1)
			_, _, err := login(t, is, browser(t, tt.query, visits))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			v := <-visits
			if v.status != http.StatusUnauthorized || !strings.Contains(v.body, "Login failed") {
				t.Errorf("browser saw %d %q", v.status, v.body)
			}
		})
	}
}

// Rule: a listen address in use fails at once and says which flag to change; a user who never
// comes back ends with the context.
func TestFlowSetupAndTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	is := newFakeIssuer(t)
	_, err = Flow{ListenAddress: ln.Addr().String(), Messages: io.Discard}.Login(context.Background(), is)
	if err == nil || !strings.Contains(err.Error(), "pass --listen-address with a free host:port registered as redirect URI") {
		t.Fatalf("address in use: err = %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = Flow{ListenAddress: "127.0.0.1:0", Messages: io.Discard}.Login(ctx, is)
	if err == nil || !strings.Contains(err.Error(), "no login in the browser") {
		t.Fatalf("never logged in: err = %v", err)
	}
}
