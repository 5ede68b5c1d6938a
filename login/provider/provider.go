// Package provider is the OpenID Connect issuer as the login flows see it: its discovery
// document, the OAuth 2.0 client configured for it, the HTTP client that trusts its
// certificate, and the checks of the id_tokens it issues.
package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Grant types, as discovery documents name them in grant_types_supported.
const (
	GrantAuthCode     = "authorization_code"
	GrantRefreshToken = "refresh_token"
	GrantPassword     = "password"
	GrantDeviceCode   = "urn:ietf:params:oauth:grant-type:device_code"
)

// requestTimeout bounds each HTTP request to the issuer.
const requestTimeout = 30 * time.Second

// Config says which issuer and client to use.
type Config struct {
	IssuerURL    string   // exactly as in the id_tokens' iss
	ClientID     string   // the OAuth 2.0 client; the id_tokens' aud
	ClientSecret string   // empty for a public client
	Scopes       []string // requested in every grant
	CAFile       string   // PEM certificates trusted for the issuer, besides the system's
}

// Provider is a discovered issuer.
type Provider struct {
	// OAuth2 is the client configuration for the issuer's endpoints. Flows copy it to set a
	// RedirectURL; they never change it in place.
	OAuth2 oauth2.Config

	issuer string
	client *http.Client
	oidc   *oidc.Provider
	grants []string // grant_types_supported, nil when the document does not list them
}

// Discover reads the issuer's discovery document.
func Discover(ctx context.Context, cfg Config) (*Provider, error) {
	client, err := HTTPClient(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.IssuerURL)
	if err != nil {
		return nil, discoveryError(cfg.IssuerURL, err)
	}
	var doc struct {
		Grants      []string `json:"grant_types_supported"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := op.Claims(&doc); err != nil {
		return nil, fmt.Errorf("the discovery document of %s cannot be read: %w", cfg.IssuerURL, err)
	}
	endpoint := op.Endpoint()
	endpoint.AuthStyle = authStyle(cfg.ClientSecret, doc.AuthMethods)
	return &Provider{
		OAuth2: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     endpoint,
			Scopes:       cfg.Scopes,
		},
		issuer: cfg.IssuerURL,
		client: client,
		oidc:   op,
		grants: doc.Grants,
	}, nil
}

// authStyle picks how the client authenticates at the token endpoint, once and for all: a
// public client sends its ID in the form; a confidential one uses HTTP Basic unless the issuer
// only takes client_secret_post. (oauth2's auto-detection would send a refused request twice.)
func authStyle(secret string, methods []string) oauth2.AuthStyle {
	if secret == "" || (len(methods) > 0 && !slices.Contains(methods, "client_secret_basic") && slices.Contains(methods, "client_secret_post")) {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

// HTTPClient returns a client that trusts the system's certificate authorities and those in
// caFile, if set.
func HTTPClient(caFile string) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read the certificate authority: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the certificate authority file %s holds no PEM certificate", caFile)
		}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: transport, Timeout: requestTimeout}, nil
}

// IssuerURL is the issuer's URL.
func (p *Provider) IssuerURL() string { return p.issuer }

// Context returns ctx carrying the HTTP client that trusts the issuer, for oauth2 calls.
func (p *Provider) Context(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, p.client)
}

// Grants returns the grant types the discovery document lists, or nil if it lists none.
func (p *Provider) Grants() []string { return p.grants }

// Offers reports whether the issuer offers grant: listed in its discovery document or, when the
// document lists no grant types, assumed (the token endpoint will say).
func (p *Provider) Offers(grant string) bool {
	if grant == GrantDeviceCode && p.OAuth2.Endpoint.DeviceAuthURL == "" {
		return false
	}
	return p.grants == nil || slices.Contains(p.grants, grant)
}

// Unoffered is the error for a grant the issuer's discovery document does not offer.
func (p *Provider) Unoffered(grant string) error {
	if grant == GrantDeviceCode && p.OAuth2.Endpoint.DeviceAuthURL == "" {
		return fmt.Errorf("the issuer %s does not offer the device code grant: its discovery document has no device_authorization_endpoint", p.issuer)
	}
	return &UnofferedGrantError{Issuer: p.issuer, Grant: grant, Offered: p.grants}
}

// UnofferedGrantError says that the issuer does not offer a grant, and which ones it does.
type UnofferedGrantError struct {
	Issuer  string
	Grant   string
	Offered []string
}

func (e *UnofferedGrantError) Error() string {
	return fmt.Sprintf("the issuer %s does not offer the %s grant; its discovery document offers: %s",
		e.Issuer, e.Grant, joinOr(e.Offered, "none"))
}

// IDToken is a verified id_token.
type IDToken struct {
	Raw    string
	Expiry time.Time
}

// Verify checks the id_token in tok, as issued just now to this client: signature (with the
// issuer's keys), iss, aud, exp and, when nonce is set, nonce.
func (p *Provider) Verify(ctx context.Context, tok *oauth2.Token, nonce string) (IDToken, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return IDToken{}, errors.New("the issuer answered without an id_token (is openid in --scopes?)")
	}
	idToken, err := p.oidc.Verifier(&oidc.Config{ClientID: p.OAuth2.ClientID}).Verify(p.Context(ctx), raw)
	if err != nil {
		return IDToken{}, fmt.Errorf("the id_token the issuer sent does not verify: %w", Explain(p.issuer, err))
	}
	if nonce != "" && idToken.Nonce != nonce {
		return IDToken{}, errors.New("the id_token the issuer sent does not carry this login's nonce")
	}
	return IDToken{Raw: raw, Expiry: idToken.Expiry}, nil
}

// PasswordCredentialsToken sends a username and password to the token endpoint (the
// password flow's Client).
func (p *Provider) PasswordCredentialsToken(ctx context.Context, username, password string) (*oauth2.Token, error) {
	return p.OAuth2.PasswordCredentialsToken(p.Context(ctx), username, password)
}

// DeviceAuth asks the issuer for a device code (the device code flow's Client). A client
// secret is sent too: RFC 8628 lets the client authenticate here, and some issuers (Dex)
// compare the secret given here with the client's when the user approves.
func (p *Provider) DeviceAuth(ctx context.Context) (*oauth2.DeviceAuthResponse, error) {
	var secret []oauth2.AuthCodeOption
	if p.OAuth2.ClientSecret != "" {
		secret = append(secret, oauth2.SetAuthURLParam("client_secret", p.OAuth2.ClientSecret))
	}
	return p.OAuth2.DeviceAuth(p.Context(ctx), secret...)
}

// DeviceAccessToken polls the token endpoint until the user has approved the device code, it
// expires or ctx ends (the device code flow's Client).
func (p *Provider) DeviceAccessToken(ctx context.Context, auth *oauth2.DeviceAuthResponse) (*oauth2.Token, error) {
	return p.OAuth2.DeviceAccessToken(p.Context(ctx), auth)
}

// AuthCodeURL is the authorization endpoint's URL for a login redirected to redirectURL (the
// authorization code flow's Client).
func (p *Provider) AuthCodeURL(redirectURL, state string, opts ...oauth2.AuthCodeOption) string {
	cfg := p.OAuth2
	cfg.RedirectURL = redirectURL
	return cfg.AuthCodeURL(state, opts...)
}

// Exchange trades an authorization code, given to redirectURL, for tokens (the authorization
// code flow's Client).
func (p *Provider) Exchange(ctx context.Context, redirectURL, code string, opts ...oauth2.AuthCodeOption) (*oauth2.Token, error) {
	cfg := p.OAuth2
	cfg.RedirectURL = redirectURL
	return cfg.Exchange(p.Context(ctx), code, opts...)
}

// Refresh uses a refresh token for new tokens.
func (p *Provider) Refresh(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	tok, err := p.OAuth2.TokenSource(p.Context(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return nil, Explain(p.issuer, err)
	}
	return tok, nil
}
