package dex

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Patterns of Dex's HTML templates (web/templates/password.html and device.html).
var (
	formAction    = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	userCodeInput = regexp.MustCompile(`name="user_code"[^>]*?value="([^"]*)"`)
	errorBox      = regexp.MustCompile(`(?s)id="login-error"[^>]*>(.*?)</div>`)
	errorPage     = regexp.MustCompile(`(?s)<h2 class="theme-heading">(.*?)</h2>\s*<p>(.*?)</p>`)
)

// maxForms bounds how many forms LogIn submits.
const maxForms = 4

// LogIn does in Dex's web pages what a person does in a browser, starting at pageURL: it
// follows redirects, submits the user code the device page shows (open it with the
// verification_uri_complete of a device authorization), and fills in Dex's login form with email
// and password. It returns the body of the page it ends on: the answer of the client's redirect
// URI for an authorization request (e.g. a command-line tool's loopback server), or Dex's
// "device approved" page. A page Dex answers with an error, or shows an error box on, is an error.
func (s *Server) LogIn(ctx context.Context, pageURL, email, password string) (string, error) {
	transport := s.client.Transport
	browser := &http.Client{Transport: transport, Timeout: s.client.Timeout} // follows redirects
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pageURL, nil)
	if err != nil {
		return "", fmt.Errorf("cannot build the request for %s: %w", pageURL, err)
	}
	for range maxForms + 1 {
		page, status, body, err := fetch(browser, req)
		if err != nil {
			return "", err
		}
		if m := errorBox.FindStringSubmatch(body); m != nil {
			return "", fmt.Errorf("Dex shows an error on %s: %s", page.Path, text(m[1]))
		}
		if status != http.StatusOK {
			if m := errorPage.FindStringSubmatch(body); m != nil {
				return "", fmt.Errorf("%s answered HTTP %d: %s: %s", page.Path, status, text(m[1]), text(m[2]))
			}
			return "", fmt.Errorf("%s answered HTTP %d: %.200s", page, status, text(body))
		}
		var form url.Values
		switch {
		case strings.Contains(body, `name="user_code"`):
			m := userCodeInput.FindStringSubmatch(body)
			if m == nil || m[1] == "" {
				return "", errors.New("the device page asks for a user code: open the verification_uri_complete, which carries it")
			}
			form = url.Values{"user_code": {html.UnescapeString(m[1])}}
		case strings.Contains(body, `name="password"`):
			form = url.Values{"login": {email}, "password": {password}}
		default:
			return body, nil
		}
		m := formAction.FindStringSubmatch(body)
		if m == nil {
			return "", fmt.Errorf("the page %s has no form to submit", page.Path)
		}
		action, err := page.Parse(html.UnescapeString(m[1]))
		if err != nil {
			return "", fmt.Errorf("the form on %s posts to an invalid URL: %w", page.Path, err)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(form.Encode()))
		if err != nil {
			return "", fmt.Errorf("cannot build the form submission to %s: %w", action, err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return "", fmt.Errorf("still no final page after %d forms", maxForms)
}

// fetch sends req with browser, following redirects, and returns the final URL, status and body.
func fetch(browser *http.Client, req *http.Request) (*url.URL, int, string, error) {
	resp, err := browser.Do(req)
	if err != nil {
		return nil, 0, "", fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, 0, "", fmt.Errorf("reading %s: %w", resp.Request.URL, err)
	}
	return resp.Request.URL, resp.StatusCode, string(b), nil
}

// text turns an HTML fragment into one line of text.
func text(fragment string) string {
	return strings.Join(strings.Fields(html.UnescapeString(fragment)), " ")
}
