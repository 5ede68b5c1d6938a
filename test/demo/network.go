package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// newMTLSClient returns an HTTP client that trusts stateDir/ca.crt and presents the client
// certificate `init` made for kube-apiserver, as kube-apiserver does when it calls the webhook.
func newMTLSClient(stateDir string) (*http.Client, error) {
	caFile := filepath.Join(stateDir, "ca.crt")
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the authenticator's CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	clientCert, err := tls.LoadX509KeyPair(
		filepath.Join(stateDir, "apiserver-client.crt"),
		filepath.Join(stateDir, "apiserver-client.key"),
	)
	if err != nil {
		return nil, fmt.Errorf("cannot load the apiserver client certificate made by init: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{clientCert},
		MinVersion:   tls.VersionTLS12,
	}
	return &http.Client{Transport: transport, Timeout: 10 * time.Second}, nil
}

// freeAddress returns 127.0.0.1:PORT for a port that is free right now.
func freeAddress(ctx context.Context) (string, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("cannot find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
