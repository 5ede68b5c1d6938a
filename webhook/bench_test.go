package webhook_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/oidc-authenticator/oidc-authenticator/webhook"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/metrics"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/pki"
)

// BenchmarkReview measures the handler's own cost per TokenReview, without TLS or a network:
// what the server adds on top of the HTTP stack. "floor" is the least any handler does:
// decode the review and write a fixed answer (test/bench's ceiling server).
//
//	go test -run '^$' -bench Review -benchmem ./webhook/
func BenchmarkReview(b *testing.B) {
	ti := issuertest.New(b)
	// An unknown key is refetched at most hourly: the flood below meets the scheduled fetch,
	// however slowly this machine runs the cases before it.
	is, err := issuer.New(ti.Config(), issuer.Options{KeyRefreshInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go is.Run(ctx)
	if err := is.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	srv := benchServer(b, is, authn.Options{CacheTTL: 60e9, CacheMaxEntries: 1000})
	// The same server with no cache: every review verifies its token.
	cold := benchServer(b, is, authn.Options{})
	valid := ti.Token(b, nil)
	guids := make([]any, 1000)
	for i := range guids {
		guids[i] = fmt.Sprintf("%08x-4b1e-4c2d-9e7f-%012x", i, i*7919)
	}
	// A token from an IdP that sends every group's GUID (issue 17: a hit costs what its bytes
	// cost).
	manyGroups := ti.Token(b, map[string]any{"groups": guids})
	// The same token, naming a key the issuer does not publish.
	unknownKid := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"forged"}`)) + valid[strings.IndexByte(valid, '.'):]
	for _, tc := range []struct {
		name    string
		handler http.Handler
		token   string
	}{
		{"floor", floorHandler(), valid},
		{"cache-hit", srv.Handler(), valid},
		{"cache-hit/groups=1000", srv.Handler(), manyGroups},
		{"floor/groups=1000", floorHandler(), manyGroups},
		{"cold", cold.Handler(), valid},
		{"cold/groups=1000", cold.Handler(), manyGroups},
		{"garbage", srv.Handler(), strings.Repeat("garbage ", 100)},
		{"unknown-kid", srv.Handler(), unknownKid},
	} {
		body := review("v1", tc.token)
		// One review first: a forged key's first token may be the one that fetches the keys
		// (a clean denial); the flood after it meets the scheduled fetch (unknown_key).
		tc.handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/authenticate", strings.NewReader(body)))
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				w := httptest.NewRecorder()
				r := httptest.NewRequest(http.MethodPost, "/authenticate", strings.NewReader(body))
				tc.handler.ServeHTTP(w, r)
				if w.Code != http.StatusOK || (tc.token == unknownKid && !strings.Contains(w.Body.String(), "unknown_key")) {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

// benchServer is a server whose authenticator verifies with is, under opts.
func benchServer(b *testing.B, is *issuer.Issuer, opts authn.Options) *webhook.Server {
	auth, err := authn.New(map[string]authn.Verifier{is.URL(): is}, nil, opts)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := webhook.New(webhook.Options{
		Authenticator: auth, Metrics: metrics.New(), TLS: testTLS(b),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	return srv
}

// testTLS is a serving configuration for servers that are only called through Handler.
func testTLS(b *testing.B) *tls.Config {
	files := pki.Files{Dir: b.TempDir()}
	if _, err := pki.Ensure(files, pki.Options{}); err != nil {
		b.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(files.ServerCert(), files.ServerKey())
	if err != nil {
		b.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

func floorHandler() http.Handler {
	fixed, _ := json.Marshal(authenticationv1.TokenReview{Status: authenticationv1.TokenReviewStatus{Authenticated: true}})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review authenticationv1.TokenReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = w.Write(fixed)
	})
}
