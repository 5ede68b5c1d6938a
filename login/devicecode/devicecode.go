// Package devicecode logs in with the device authorization grant (RFC 8628): the user opens a
// URL on any device, enters (or confirms) a short code and logs in there, while this process
// polls the issuer until the login is done. Nothing needs to listen on this machine, so it
// works over SSH.
package devicecode

import (
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/oauth2"

	"github.com/oidc-authenticator/oidc-authenticator/login/provider"
)

// Client is what the device code flow needs of the issuer; *provider.Provider is one.
type Client interface {
	IssuerURL() string
	DeviceAuth(ctx context.Context) (*oauth2.DeviceAuthResponse, error)
	DeviceAccessToken(ctx context.Context, auth *oauth2.DeviceAuthResponse) (*oauth2.Token, error)
}

// Flow is a device code login.
type Flow struct {
	// OpenBrowser opens the verification URL on this machine; nil means the user opens it.
	OpenBrowser func(url string) error
	// Messages receives the instructions for the user (standard error).
	Messages io.Writer
}

// Login asks the issuer for a device code, tells the user where to enter it and waits.
func (f Flow) Login(ctx context.Context, p Client) (*oauth2.Token, error) {
	auth, err := p.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("the issuer refused a device code: %w", provider.Explain(p.IssuerURL(), err))
	}
	open := auth.VerificationURIComplete
	if open == "" {
		open = auth.VerificationURI
	}
	fmt.Fprintf(f.Messages, "To log in at %s, open %s in a browser and check that it shows the code %s",
		p.IssuerURL(), open, auth.UserCode)
	if auth.VerificationURIComplete != "" && auth.VerificationURIComplete != auth.VerificationURI {
		fmt.Fprintf(f.Messages, "\n  (or open %s and enter the code)", auth.VerificationURI)
	}
	fmt.Fprintln(f.Messages)
	if f.OpenBrowser != nil {
		_ = f.OpenBrowser(open) // the instructions above stand whether it opens or not
	}
	tok, err := p.DeviceAccessToken(ctx, auth)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no login in the browser: %w", ctx.Err())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, errors.New("the device code expired before the login was done: run the command again")
		}
		var refused *provider.OAuthError
		if err = provider.Explain(p.IssuerURL(), err); errors.As(err, &refused) && refused.Code == "access_denied" {
			return nil, fmt.Errorf("the login was denied in the browser (%w)", err)
		}
		return nil, fmt.Errorf("the device code login failed: %w", err)
	}
	return tok, nil
}
