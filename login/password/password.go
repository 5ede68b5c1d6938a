// Package password logs in with the resource-owner password credentials grant (RFC 6749
// section 4.3): the user's name and password are sent to the issuer's token endpoint.
package password

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/oauth2"

	"github.com/oidc-authenticator/oidc-authenticator/login/provider"
)

// Client is what the password flow needs of the issuer; *provider.Provider is one.
type Client interface {
	IssuerURL() string
	PasswordCredentialsToken(ctx context.Context, username, password string) (*oauth2.Token, error)
}

// Asker asks the person at the terminal; it fails when there is no terminal.
type Asker interface {
	Ask(question string) (string, error)       // the answer is echoed
	AskSecret(question string) (string, error) // the answer is not echoed
}

// Flow is a password login. Username and Password are asked for when empty.
type Flow struct {
	Username string
	Password string
	Asker    Asker
}

// Login sends the username and password to the issuer.
func (f Flow) Login(ctx context.Context, p Client) (*oauth2.Token, error) {
	username, password := f.Username, f.Password
	if username == "" {
		if username = f.ask("Username: ", false); username == "" {
			return nil, errors.New("the password grant needs a username: pass --username")
		}
	}
	if password == "" {
		if password = f.ask(fmt.Sprintf("Password for %s: ", username), true); password == "" {
			return nil, fmt.Errorf("no password for %s: pass --password, set OIDC_PASSWORD, or run on a terminal to be asked", username)
		}
	}
	tok, err := p.PasswordCredentialsToken(ctx, username, password)
	if err != nil {
		err = provider.Explain(p.IssuerURL(), err)
		var refused *provider.OAuthError
		if errors.As(err, &refused) && (refused.Code == "invalid_grant" || refused.Code == "access_denied") {
			return nil, fmt.Errorf("wrong username or password for %s (%w)", username, err)
		}
		return nil, fmt.Errorf("the password grant for %s failed: %w", username, err)
	}
	return tok, nil
}

// ask returns the answer to question, or "" when there is nobody to ask.
func (f Flow) ask(question string, secret bool) string {
	if f.Asker == nil {
		return ""
	}
	ask := f.Asker.Ask
	if secret {
		ask = f.Asker.AskSecret
	}
	answer, err := ask(question)
	if err != nil {
		return ""
	}
	return answer
}
