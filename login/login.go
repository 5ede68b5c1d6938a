// Package login gets the user an id_token the way kubectl needs it, and decides how: the
// cached id_token while it is fresh (no network at all), else the refresh token, else a new
// login with a grant (password, authorization code or device code). A lock on the cache entry
// makes concurrent kubectl processes log in once and share the result.
package login

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidc-authenticator/oidc-authenticator/login/authcode"
	"github.com/oidc-authenticator/oidc-authenticator/login/browser"
	"github.com/oidc-authenticator/oidc-authenticator/login/devicecode"
	"github.com/oidc-authenticator/oidc-authenticator/login/password"
	"github.com/oidc-authenticator/oidc-authenticator/login/provider"
	"github.com/oidc-authenticator/oidc-authenticator/login/tokencache"
)

// Grant types the user can choose (--grant-type).
const (
	GrantAuto       = "auto"
	GrantAuthCode   = "authcode"
	GrantDeviceCode = "device-code"
	GrantPassword   = "password"
)

// GrantTypes lists the grant types the user can choose.
var GrantTypes = []string{GrantAuto, GrantAuthCode, GrantDeviceCode, GrantPassword}

// Options say how to log in.
type Options struct {
	Provider      provider.Config
	GrantType     string         // one of GrantTypes
	Username      string         // for the password grant; also part of the cache key
	Password      string         // for the password grant; asked for when empty
	Asker         password.Asker // asks for a missing username or password
	ListenAddress string         // for the authorization code grant's loopback redirect
	Browser       []string       // command that opens a URL in a browser; nil: the user opens it
	CacheDir      string
	ForceRefresh  bool      // do not hand out the cached id_token, even if fresh
	Messages      io.Writer // instructions and notes for the user (standard error)
}

// Token is an id_token and its expiry.
type Token struct {
	IDToken string
	Expiry  time.Time
}

// grant is a login flow, bound to the issuer.
type grant func(ctx context.Context) (*oauth2.Token, error)

// Login returns an id_token: the cached one while it is fresh, else one obtained with the
// refresh token, else one from a new login.
func Login(ctx context.Context, o Options) (Token, error) {
	if err := checkGrantType(o.GrantType); err != nil {
		return Token{}, err
	}
	if o.CacheDir == "" {
		return Token{}, errors.New("no token cache directory: pass --token-cache-dir")
	}
	if o.Messages == nil {
		o.Messages = io.Discard
	}
	key := tokencache.Key{IssuerURL: o.Provider.IssuerURL, ClientID: o.Provider.ClientID, Scopes: o.Provider.Scopes, Username: o.Username}
	cache := tokencache.Dir(o.CacheDir)
	if !o.ForceRefresh {
		if tok, err := cached(ctx, o.Provider, cache, key); err == nil && fresh(tok, time.Now()) {
			return tok.token(), nil
		}
	}

	unlock, err := cache.Lock(ctx, key, func() {
		fmt.Fprintln(o.Messages, "Waiting for another oidc-authenticator process that is logging in with the same settings...")
	})
	if err != nil {
		return Token{}, err
	}
	defer unlock()
	// Another process may have logged in while this one waited for the lock.
	tok, err := cached(ctx, o.Provider, cache, key)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(o.Messages, "Ignoring the cached token: %v\n", err)
	}
	if err == nil && !o.ForceRefresh && fresh(tok, time.Now()) {
		return tok.token(), nil
	}

	p, err := provider.Discover(ctx, o.Provider)
	if err != nil {
		return Token{}, err
	}
	idToken, refreshToken, err := o.renew(ctx, p, tok.refreshToken)
	if err != nil {
		return Token{}, err
	}
	if err := cache.Save(key, tokencache.Entry{IDToken: idToken.Raw, RefreshToken: refreshToken}); err != nil {
		return Token{}, err
	}
	return Token{IDToken: idToken.Raw, Expiry: idToken.Expiry}, nil
}

// renew gets a new id_token with the refresh token, if there is one and the issuer takes it, or
// else with a new login. It returns the id_token and the refresh token to keep.
func (o Options) renew(ctx context.Context, p *provider.Provider, refreshToken string) (provider.IDToken, string, error) {
	if refreshToken != "" {
		tok, err := p.Refresh(ctx, refreshToken)
		var refused *provider.OAuthError
		switch {
		case errors.As(err, &refused):
			fmt.Fprintf(o.Messages, "The issuer did not refresh the token (%v); logging in again.\n", err)
		case err != nil:
			return provider.IDToken{}, "", fmt.Errorf("cannot refresh the token: %w", err)
		default:
			idToken, err := p.Verify(ctx, tok, "")
			if err == nil {
				return idToken, tok.RefreshToken, nil
			}
			fmt.Fprintf(o.Messages, "The refreshed token is unusable (%v); logging in again.\n", err)
		}
	}
	g, err := o.grant(p)
	if err != nil {
		return provider.IDToken{}, "", err
	}
	tok, err := g(ctx)
	if err != nil {
		return provider.IDToken{}, "", err
	}
	idToken, err := p.Verify(ctx, tok, "")
	if err != nil {
		return provider.IDToken{}, "", err
	}
	return idToken, tok.RefreshToken, nil
}

// grant returns the login flow for o.GrantType, checked against what the issuer offers.
func (o Options) grant(p *provider.Provider) (grant, error) {
	var open func(string) error
	if len(o.Browser) > 0 {
		open = func(url string) error { return browser.Open(o.Browser, url) }
	}
	kind := o.GrantType
	if kind == GrantAuto {
		kind = o.auto(p)
	}
	switch kind {
	case GrantPassword:
		if !p.Offers(provider.GrantPassword) {
			return nil, p.Unoffered(provider.GrantPassword)
		}
		f := password.Flow{Username: o.Username, Password: o.Password, Asker: o.Asker}
		return func(ctx context.Context) (*oauth2.Token, error) { return f.Login(ctx, p) }, nil
	case GrantAuthCode:
		if !p.Offers(provider.GrantAuthCode) {
			return nil, p.Unoffered(provider.GrantAuthCode)
		}
		f := authcode.Flow{ListenAddress: o.ListenAddress, OpenBrowser: open, Messages: o.Messages}
		return func(ctx context.Context) (*oauth2.Token, error) { return f.Login(ctx, p) }, nil
	default: // GrantDeviceCode
		if !p.Offers(provider.GrantDeviceCode) {
			return nil, p.Unoffered(provider.GrantDeviceCode)
		}
		f := devicecode.Flow{OpenBrowser: open, Messages: o.Messages}
		return func(ctx context.Context) (*oauth2.Token, error) { return f.Login(ctx, p) }, nil
	}
}

// auto chooses the grant for --grant-type auto: the password grant when a username is given;
// else the authorization code grant when a browser can be opened here; else the device code
// grant, which needs no browser on this machine, when the issuer offers it.
func (o Options) auto(p *provider.Provider) string {
	switch {
	case o.Username != "":
		return GrantPassword
	case len(o.Browser) > 0 && p.Offers(provider.GrantAuthCode):
		return GrantAuthCode
	case p.Offers(provider.GrantDeviceCode):
		return GrantDeviceCode
	default:
		return GrantAuthCode
	}
}

func checkGrantType(g string) error {
	for _, known := range GrantTypes {
		if g == known {
			return nil
		}
	}
	return fmt.Errorf("--grant-type %q: want one of auto, authcode, device-code, password", g)
}
