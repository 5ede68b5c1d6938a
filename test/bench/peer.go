package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apiserver/pkg/apis/apiserver"
	tokencache "k8s.io/apiserver/pkg/authentication/token/cache"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/oidc"
)

// servePeer runs the reference peer: the TokenReview server a skilled user assembles today
// from kube-apiserver's own JWT authenticator (k8s.io/apiserver's token/oidc, structured
// configuration) wrapped in the apiserver's token cache, as Gardener's oidc-webhook-
// authenticator does. Same claim mappings, cache TTL and TLS as the server under test; like
// it, denials are not cached.
func servePeer(addr, certFile, keyFile, issuerURL, caFile string, http1Only bool) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	empty, oidcPrefix := "", "oidc:"
	auth, err := oidc.New(context.Background(), oidc.Options{
		JWTAuthenticator: apiserver.JWTAuthenticator{
			Issuer: apiserver.Issuer{URL: issuerURL, Audiences: []string{audience}},
			ClaimMappings: apiserver.ClaimMappings{
				Username: apiserver.PrefixedClaimOrExpression{Claim: "email", Prefix: &empty},
				Groups:   apiserver.PrefixedClaimOrExpression{Claim: "groups", Prefix: &oidcPrefix},
				UID:      apiserver.ClaimOrExpression{Claim: "sub"},
			},
		},
		CAContentProvider:    staticCA(ca),
		SupportedSigningAlgs: []string{"RS256", "ES256"},
	})
	if err != nil {
		return fmt.Errorf("build the reference authenticator: %w", err)
	}
	cached := tokencache.New(auth, false, 2*time.Minute, 0)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := auth.HealthCheck(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /authenticate", func(w http.ResponseWriter, r *http.Request) {
		var review authenticationv1.TokenReview
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&review); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, ok, err := cached.AuthenticateToken(r.Context(), review.Spec.Token)
		review.Status = authenticationv1.TokenReviewStatus{}
		if err == nil && ok {
			u := resp.User
			review.Status.Authenticated = true
			review.Status.User = authenticationv1.UserInfo{Username: u.GetName(), UID: u.GetUID(), Groups: u.GetGroups()}
		}
		writeJSON(w, review)
	})
	return serveTLS(addr, certFile, keyFile, mux, http1Only)
}

type staticCA []byte

func (c staticCA) CurrentCABundleContent() []byte { return c }
