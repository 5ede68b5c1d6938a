package main

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// serveCeiling runs the ceiling: an HTTPS server that decodes each TokenReview and answers a
// fixed one, with the same TLS, HTTP/1.1 and JSON stack as oidc-authenticator and no
// verification at all. No webhook can answer faster on this machine.
func serveCeiling(addr, certFile, keyFile string) error {
	fixed, err := json.Marshal(authenticationv1.TokenReview{
		Status: authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{
			Username: "user-0@example.com", UID: "ceiling", Groups: []string{"oidc:developers", "oidc:team-0"},
		}},
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("POST /authenticate", func(w http.ResponseWriter, r *http.Request) {
		var review authenticationv1.TokenReview
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&review); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(fixed)
	})
	return serveTLS(addr, certFile, keyFile, mux, true)
}

// serveTLS serves h over HTTPS. HTTP/2 is left on (Go's default, and what a user assembling a
// webhook gets) unless http1Only; oidc-authenticator serves HTTP/1.1 only.
func serveTLS(addr, certFile, keyFile string, h http.Handler, http1Only bool) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if http1Only {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	return srv.ListenAndServeTLS(certFile, keyFile)
}
