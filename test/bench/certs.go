package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// tlsRoots is the self-signed serving certificate every process of the benchmark uses, as
// files (for the servers) and as a pool (for the clients).
type tlsRoots struct {
	certFile, keyFile string
	certPEM           []byte
	cert              tls.Certificate
	pool              *x509.CertPool
}

func newTLSRoots(dir string) (tlsRoots, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tlsRoots{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "oidc-authenticator bench"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tlsRoots{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tlsRoots{}, err
	}
	r := tlsRoots{
		certFile: filepath.Join(dir, "tls.crt"),
		keyFile:  filepath.Join(dir, "tls.key"),
		certPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pool:     x509.NewCertPool(),
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(r.certFile, r.certPEM, 0o600); err != nil {
		return tlsRoots{}, err
	}
	if err := os.WriteFile(r.keyFile, keyPEM, 0o600); err != nil {
		return tlsRoots{}, err
	}
	r.pool.AppendCertsFromPEM(r.certPEM)
	r.cert, err = tls.X509KeyPair(r.certPEM, keyPEM)
	return r, err
}
