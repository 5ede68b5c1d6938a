package dex

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// defaultScopes are requested by PasswordGrant when the caller names none; without "email" and
// "groups" Dex leaves those claims out of the id_token.
const defaultScopes = "openid email profile groups offline_access"

// maxResponse bounds how much of a Dex response is read.
const maxResponse = 1 << 20

// Tokens are the tokens returned by Dex's token endpoint.
type Tokens struct {
	IDToken      string `json:"id_token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
}

// GrantError is the OAuth2 error Dex answered a token request with.
type GrantError struct {
	Grant       string // grant type asked for, e.g. "password"
	StatusCode  int    // HTTP status of the answer
	Code        string // OAuth2 "error", e.g. "access_denied"
	Description string // OAuth2 "error_description"
}

// Error describes the refusal in one line.
func (e *GrantError) Error() string {
	return fmt.Sprintf("Dex refused the %s grant (HTTP %d): %s: %s", e.Grant, e.StatusCode, e.Code, e.Description)
}

// PasswordGrant obtains tokens with the resource-owner password grant, as the users' guides do:
// a form POST to IssuerURL+"/token" with the static client's credentials, username (the email)
// and password. scopes default to "openid email profile groups offline_access".
// A refusal by Dex is returned as a *GrantError.
func (s *Server) PasswordGrant(ctx context.Context, username, password string, scopes ...string) (Tokens, error) {
	scope := defaultScopes
	if len(scopes) > 0 {
		scope = strings.Join(scopes, " ")
	}
	return s.token(ctx, url.Values{
		"grant_type": {"password"},
		"username":   {username},
		"password":   {password},
		"scope":      {scope},
	})
}

// PasswordGrantForClient is PasswordGrant through another static client (Options.ExtraClients),
// so the id_token's aud is that client's ID.
func (s *Server) PasswordGrantForClient(ctx context.Context, c Client, username, password string) (Tokens, error) {
	return s.token(ctx, url.Values{
		"grant_type":    {"password"},
		"client_id":     {c.ID},
		"client_secret": {c.Secret},
		"username":      {username},
		"password":      {password},
		"scope":         {defaultScopes},
	})
}

// RefreshGrant exchanges a refresh token for new tokens. Dex accepts each refresh token once.
// A refusal by Dex is returned as a *GrantError.
func (s *Server) RefreshGrant(ctx context.Context, refreshToken string) (Tokens, error) {
	return s.token(ctx, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
	})
}

// token posts form, plus the client credentials, to Dex's token endpoint.
func (s *Server) token(ctx context.Context, form url.Values) (Tokens, error) {
	grant := form.Get("grant_type")
	if form.Get("client_id") == "" {
		form.Set("client_id", s.ClientID)
		form.Set("client_secret", s.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.IssuerURL+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return Tokens{}, fmt.Errorf("cannot build the %s token request: %w", grant, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return Tokens{}, fmt.Errorf("the %s token request to Dex failed: %w", grant, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return Tokens{}, fmt.Errorf("cannot read Dex's answer to the %s token request: %w", grant, err)
	}
	if resp.StatusCode != http.StatusOK {
		var oauthErr struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &oauthErr) != nil || oauthErr.Error == "" {
			oauthErr.Error, oauthErr.Description = "unexpected answer", strings.TrimSpace(string(body))
		}
		return Tokens{}, &GrantError{Grant: grant, StatusCode: resp.StatusCode, Code: oauthErr.Error, Description: oauthErr.Description}
	}
	var tokens Tokens
	if err := json.Unmarshal(body, &tokens); err != nil {
		return Tokens{}, fmt.Errorf("cannot decode Dex's answer to the %s token request: %w", grant, err)
	}
	if tokens.IDToken == "" {
		return Tokens{}, fmt.Errorf("the answer to the %s token request has no id_token (was the openid scope requested?)", grant)
	}
	return tokens, nil
}
