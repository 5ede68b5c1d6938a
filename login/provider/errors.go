package provider

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OAuthError is the issuer's OAuth 2.0 error answer (RFC 6749 section 5.2), such as
// invalid_grant or access_denied, on one line.
type OAuthError struct {
	Code        string // "error"; empty when the answer was not an OAuth 2.0 error
	Description string // "error_description", or the HTTP status when Code is empty
}

func (e *OAuthError) Error() string {
	if e.Code == "" {
		return "the issuer answered " + e.Description
	}
	if e.Description == "" {
		return "the issuer answered " + e.Code
	}
	return fmt.Sprintf("the issuer answered %s: %s", e.Code, e.Description)
}

// Explain rewords an error from a request to the issuer for the person who reads it, on one
// line: an OAuth 2.0 refusal becomes an *OAuthError, an untrusted certificate says how to trust
// it, and a network failure says the issuer cannot be reached. Other errors are returned as is.
func Explain(issuer string, err error) error {
	if err == nil {
		return nil
	}
	var retrieve *oauth2.RetrieveError
	if errors.As(err, &retrieve) {
		oe := &OAuthError{Code: retrieve.ErrorCode, Description: oneLine(retrieve.ErrorDescription)}
		if oe.Code == "" && retrieve.Response != nil {
			oe.Description = "HTTP " + retrieve.Response.Status
		}
		return oe
	}
	if trust := trustError(issuer, err); trust != nil {
		return trust
	}
	var urlErr *url.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the issuer %s did not answer in time: %w", issuer, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("interrupted: %w", err)
	case errors.As(err, &urlErr):
		return fmt.Errorf("cannot reach the issuer %s: %w", issuer, urlErr.Err)
	}
	return err
}

// trustError explains a TLS certificate the HTTP client refused, or returns nil.
func trustError(issuer string, err error) error {
	host := issuer
	if u, perr := url.Parse(issuer); perr == nil && u.Host != "" {
		host = u.Host
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("the certificate of %s is not trusted (%w): pass the certificate of the CA that signed it with --certificate-authority", host, unknown)
	case errors.As(err, &hostname):
		return fmt.Errorf("the certificate of %s is not valid for that name (%w): check --issuer-url", host, hostname)
	case errors.As(err, &invalid):
		return fmt.Errorf("the certificate of %s is not valid (%w)", host, invalid)
	}
	return nil
}

// discoveryError explains why the discovery document could not be read.
func discoveryError(issuer string, err error) error {
	var mismatch *oidc.IssuerMismatchError
	if errors.As(err, &mismatch) {
		return fmt.Errorf("the issuer at %s calls itself %q: --issuer-url must be exactly that, as in the id_tokens' iss", mismatch.Provided, mismatch.Discovered)
	}
	if explained := Explain(issuer, err); explained != err {
		return explained
	}
	// go-oidc reports an answer other than 200 as "<status>: <body>".
	return fmt.Errorf("cannot read the discovery document %s/.well-known/openid-configuration: %s (is --issuer-url right?)",
		strings.TrimSuffix(issuer, "/"), oneLine(err.Error()))
}

// oneLine returns the first line of s, at most 200 characters of it.
func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.TrimSpace(s)
}

// joinOr joins items with commas, or returns none when there are no items.
func joinOr(items []string, none string) string {
	if len(items) == 0 {
		return none
	}
	return strings.Join(items, ", ")
}
