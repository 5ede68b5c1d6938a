package provider

import (
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

func TestExplain(t *testing.T) {
	const issuer = "https://dex.example.com/dex"
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"OAuth 2.0 error", &oauth2.RetrieveError{ErrorCode: "invalid_grant", ErrorDescription: "bad\ncredentials"},
			"the issuer answered invalid_grant: bad"},
		{"not an OAuth 2.0 answer", &oauth2.RetrieveError{Response: &http.Response{Status: "502 Bad Gateway"}, Body: []byte("<html>\n</html>")},
			"the issuer answered HTTP 502 Bad Gateway"},
		{"unknown authority", &url.Error{Op: "Get", URL: issuer, Err: x509.UnknownAuthorityError{}},
			"the certificate of dex.example.com is not trusted (x509: certificate signed by unknown authority): pass the certificate of the CA that signed it with --certificate-authority"},
		{"wrong name", &url.Error{Op: "Get", URL: issuer, Err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "dex.example.com"}},
			"the certificate of dex.example.com is not valid for that name"},
		{"unreachable", &url.Error{Op: "Get", URL: issuer, Err: refused},
			"cannot reach the issuer https://dex.example.com/dex: dial tcp: connect: connection refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Explain(issuer, c.err)
			if !strings.HasPrefix(got.Error(), c.want) || strings.Contains(got.Error(), "\n") {
				t.Errorf("Explain = %q, want one line starting with %q", got, c.want)
			}
		})
	}
	other := errors.New("something else")
	if Explain(issuer, other) != other || Explain(issuer, nil) != nil {
		t.Error("other errors and nil must pass through")
	}
}
