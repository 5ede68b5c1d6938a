// Package authcode logs in with the authorization code grant and PKCE (RFC 6749 section 4.1,
// RFC 7636), receiving the code on a loopback redirect as native apps do (RFC 8252): the user
// logs in at the issuer in a browser, which is then redirected to a short-lived HTTP server on
// 127.0.0.1.
package authcode

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/oidc-authenticator/oidc-authenticator/login/provider"
)

// callbackPath is the path of the redirect URI on the loopback server.
const callbackPath = "/callback"

// Client is what the authorization code flow needs of the issuer; *provider.Provider is one.
type Client interface {
	IssuerURL() string
	// AuthCodeURL is the URL where the user logs in, redirected to redirectURL afterwards.
	AuthCodeURL(redirectURL, state string, opts ...oauth2.AuthCodeOption) string
	// Exchange trades the code given to redirectURL for tokens.
	Exchange(ctx context.Context, redirectURL, code string, opts ...oauth2.AuthCodeOption) (*oauth2.Token, error)
	// Verify checks the id_token in tok, with this login's nonce.
	Verify(ctx context.Context, tok *oauth2.Token, nonce string) (provider.IDToken, error)
}

// Flow is an authorization code login.
type Flow struct {
	// ListenAddress is where the loopback server listens, e.g. 127.0.0.1:8000; the redirect URI
	// is http://<its host>:<its port>/callback and must be registered at the issuer (an issuer
	// may accept any port for a public client). Port 0 picks a free port.
	ListenAddress string
	// OpenBrowser opens the login URL; nil means the user opens it.
	OpenBrowser func(url string) error
	// Messages receives the instructions for the user (standard error).
	Messages io.Writer
}

// callback is what the issuer's redirect brought: a code, or why there is none. The
// handler waits on done for the outcome of the login to show it in the browser.
type callback struct {
	code string
	err  error
	done chan error
}

// Login runs the loopback server, has the user log in in a browser and exchanges the code.
func (f Flow) Login(ctx context.Context, p Client) (*oauth2.Token, error) {
	host, _, err := net.SplitHostPort(f.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("--listen-address %q: want host:port: %w", f.ListenAddress, err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", f.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s for the login redirect (%w): pass --listen-address with a free host:port registered as redirect URI at the issuer", f.ListenAddress, err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	redirectURL := (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: callbackPath}).String()

	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	callbacks, finished := make(chan callback), make(chan struct{})
	server := &http.Server{Handler: handler(state, callbacks, finished), ReadHeaderTimeout: 10 * time.Second}
	go server.Serve(ln) //nolint:errcheck // ends with Shutdown below
	defer func() {
		close(finished)
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdownCtx)
	}()

	authURL := p.AuthCodeURL(redirectURL, state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
	fmt.Fprintf(f.Messages, "Log in at %s in a browser:\n  %s\n", p.IssuerURL(), authURL)
	if f.OpenBrowser != nil {
		if err := f.OpenBrowser(authURL); err != nil {
			fmt.Fprintf(f.Messages, "(could not open a browser: %v; open the URL yourself)\n", err)
		}
	}

	var cb callback
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("no login in the browser: %w", ctx.Err())
	case cb = <-callbacks:
	}
	tok, err := exchange(ctx, p, redirectURL, cb, verifier, nonce)
	cb.done <- err // the browser shows the outcome
	return tok, err
}

// exchange trades the code the redirect brought for tokens and checks the id_token.
func exchange(ctx context.Context, p Client, redirectURL string, cb callback, verifier, nonce string) (*oauth2.Token, error) {
	if cb.err != nil {
		return nil, cb.err
	}
	tok, err := p.Exchange(ctx, redirectURL, cb.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("the issuer refused the authorization code: %w", provider.Explain(p.IssuerURL(), err))
	}
	if _, err := p.Verify(ctx, tok, nonce); err != nil {
		return nil, err
	}
	return tok, nil
}

// handler answers the issuer's redirect: it checks the state, hands the code over and shows
// the outcome. Requests for other paths (a browser's /favicon.ico) get 404; redirects that come
// after the login is over get 410.
func handler(state string, callbacks chan<- callback, finished <-chan struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+callbackPath, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("state") != state {
			// Not our login (an old tab, or a forged request): ignore it, keep waiting.
			http.Error(w, "This is not the login in progress: its state does not match. Start again.", http.StatusBadRequest)
			return
		}
		cb := callback{code: q.Get("code"), done: make(chan error, 1)}
		switch {
		case q.Get("error") != "":
			cb.err = &provider.OAuthError{Code: q.Get("error"), Description: q.Get("error_description")}
			cb.err = fmt.Errorf("the login in the browser failed: %w", cb.err)
		case cb.code == "":
			cb.err = errors.New("the issuer redirected without an authorization code")
		}
		select {
		case callbacks <- cb:
		case <-finished:
			http.Error(w, "This login is over; start again from the terminal.", http.StatusGone)
			return
		}
		err := <-cb.done
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
		}
		_ = page.Execute(w, err)
	})
	return mux
}

var page = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>oidc-authenticator</title></head>
<body>{{if .}}<h1>Login failed</h1><p>{{.}}</p>{{else}}<h1>Logged in</h1><p>You can close this window and go back to the terminal.</p>{{end}}</body></html>
`))
