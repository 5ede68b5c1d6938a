package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// liveState returns a state directory filled by Ensure with the real clock,
// for tests that verify certificates at the current time.
func liveState(t *testing.T) Files {
	t.Helper()
	f := newState(t)
	if _, err := Ensure(f, Options{}); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return f
}

func loadKeyPair(t *testing.T, certFile, keyFile string) tls.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// startServer serves HTTPS on 127.0.0.1 with the server certificate of f
// through a CertReloader, requiring client certificates issued by f's CA. The
// handler answers with the common name of the client certificate.
func startServer(t *testing.T, f Files) string {
	t.Helper()
	reloader, err := NewCertReloader(f.ServerCert(), f.ServerKey(), func(err error) { t.Errorf("reload: %v", err) })
	if err != nil {
		t.Fatalf("NewCertReloader: %v", err)
	}
	clientCAs, err := LoadCertPool(f.CACert())
	if err != nil {
		t.Fatalf("LoadCertPool: %v", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		GetCertificate: reloader.GetCertificate,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      clientCAs,
		MinVersion:     tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, r.TLS.PeerCertificates[0].Subject.CommonName)
		}),
		ErrorLog: log.New(io.Discard, "", 0), // failed handshakes are expected
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestTLSHandshake(t *testing.T) {
	f := liveState(t)
	other := liveState(t)
	addr := startServer(t, f)
	_, port, _ := net.SplitHostPort(addr)

	roots := caPool(t, f)
	clientPair := loadKeyPair(t, f.ClientCert(), f.ClientKey())

	tests := []struct {
		name       string
		serverName string
		roots      *x509.CertPool
		certs      []tls.Certificate
		wantErr    bool
	}{
		{"client certificate, server by IP", "", roots, []tls.Certificate{clientPair}, false},
		{"client certificate, server by localhost", "localhost", roots, []tls.Certificate{clientPair}, false},
		{"no client certificate", "", roots, nil, true},
		{"client certificate of another CA", "", roots,
			[]tls.Certificate{loadKeyPair(t, other.ClientCert(), other.ClientKey())}, true},
		{"server certificate used as client certificate", "", roots,
			[]tls.Certificate{loadKeyPair(t, f.ServerCert(), f.ServerKey())}, true},
		{"server not trusted by client", "", caPool(t, other), []tls.Certificate{clientPair}, true},
		{"server name not in certificate", "other.example.com", roots, []tls.Certificate{clientPair}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := &http.Client{
				Timeout: 10 * time.Second,
				Transport: &http.Transport{
					DisableKeepAlives: true,
					TLSClientConfig: &tls.Config{
						RootCAs:      tt.roots,
						ServerName:   tt.serverName,
						Certificates: tt.certs,
					},
				},
			}
			resp, err := client.Get("https://" + net.JoinHostPort("127.0.0.1", port) + "/authenticate")
			if tt.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request succeeded with status %s, want a TLS failure", resp.Status)
				}
				return
			}
			if err != nil {
				t.Fatalf("request failed: %v", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != "kube-apiserver" {
				t.Errorf("server saw client %q, want kube-apiserver", body)
			}
		})
	}
}

// certDER returns the DER of the first certificate in a PEM file.
func certDER(t *testing.T, path string) []byte {
	t.Helper()
	block, _ := pem.Decode(readFile(t, path))
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	return block.Bytes
}

// replaceFile writes data to path by rename and sets its modification time.
func replaceFile(t *testing.T, path string, data []byte, mtime time.Time) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fakeClock drives a CertReloader's check interval.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func servedDER(t *testing.T, r *CertReloader) []byte {
	t.Helper()
	cert, err := r.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || cert == nil {
		t.Fatalf("GetCertificate = %v, %v", cert, err)
	}
	return cert.Certificate[0]
}

func TestCertReloaderFollowsFileChanges(t *testing.T) {
	a, b := newState(t), newState(t)
	ensure(t, a)
	ensure(t, b)

	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	install := func(f Files) func(t *testing.T) {
		return func(t *testing.T) {
			mtime = mtime.Add(10 * time.Second)
			replaceFile(t, certFile, readFile(t, f.ServerCert()), mtime)
			replaceFile(t, keyFile, readFile(t, f.ServerKey()), mtime)
		}
	}
	install(a)(t)

	var errs []error
	r, err := NewCertReloader(certFile, keyFile, func(err error) { errs = append(errs, err) })
	if err != nil {
		t.Fatalf("NewCertReloader: %v", err)
	}
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	r.now, r.lastCheck = clock.Now, clock.now

	steps := []struct {
		name     string
		change   func(t *testing.T)
		advance  time.Duration
		want     Files // whose server certificate must be served
		wantErrs int   // onError calls so far
	}{
		{"initial pair", nil, 0, a, 0},
		{"new pair, within the check interval", install(b), 500 * time.Millisecond, a, 0},
		{"new pair, after the check interval", nil, 600 * time.Millisecond, b, 0},
		{"garbage certificate", func(t *testing.T) {
			mtime = mtime.Add(10 * time.Second)
			replaceFile(t, certFile, []byte("not a certificate\n"), mtime)
		}, 2 * time.Second, b, 1},
		{"same garbage is not reported again", nil, 2 * time.Second, b, 1},
		{"certificate file removed", func(t *testing.T) {
			if err := os.Remove(certFile); err != nil {
				t.Fatal(err)
			}
		}, 2 * time.Second, b, 2},
		{"old pair back", install(a), 2 * time.Second, a, 2},
		{"clock going backwards checks again", install(b), -time.Hour, b, 2},
	}
	for _, st := range steps {
		if st.change != nil {
			st.change(t)
		}
		clock.now = clock.now.Add(st.advance)
		if got := servedDER(t, r); !bytes.Equal(got, certDER(t, st.want.ServerCert())) {
			t.Errorf("%s: served the wrong certificate", st.name)
		}
		if len(errs) != st.wantErrs {
			t.Errorf("%s: onError called %d times, want %d (%v)", st.name, len(errs), st.wantErrs, errs)
		}
	}
	if len(errs) >= 2 {
		for _, want := range []string{certFile, "still serving the previous certificate"} {
			if !strings.Contains(errs[0].Error(), want) {
				t.Errorf("error %q does not mention %q", errs[0], want)
			}
		}
		if !errors.Is(errs[1], os.ErrNotExist) {
			t.Errorf("error for a removed file = %v, want one wrapping os.ErrNotExist", errs[1])
		}
	}
}

func TestCertReloaderSymlinkSwap(t *testing.T) {
	a, b := newState(t), newState(t)
	ensure(t, a)
	ensure(t, b)

	// The layout kubelet uses for projected volumes: the visible names
	// point through ..data, which is swapped atomically to a new directory.
	dir := t.TempDir()
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	publish := func(version string, f Files) {
		t.Helper()
		vdir := filepath.Join(dir, version)
		if err := os.Mkdir(vdir, 0o755); err != nil {
			t.Fatal(err)
		}
		mtime = mtime.Add(time.Minute)
		replaceFile(t, filepath.Join(vdir, "tls.crt"), readFile(t, f.ServerCert()), mtime)
		replaceFile(t, filepath.Join(vdir, "tls.key"), readFile(t, f.ServerKey()), mtime)
		tmpLink := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(version, tmpLink); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmpLink, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	publish("..v1", a)
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}

	r, err := NewCertReloader(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"),
		func(err error) { t.Errorf("reload: %v", err) })
	if err != nil {
		t.Fatalf("NewCertReloader: %v", err)
	}
	r.interval = 0
	if !bytes.Equal(servedDER(t, r), certDER(t, a.ServerCert())) {
		t.Fatal("does not serve the first pair")
	}
	publish("..v2", b)
	if !bytes.Equal(servedDER(t, r), certDER(t, b.ServerCert())) {
		t.Fatal("does not serve the pair after the symlink swap")
	}
}

func TestCertReloaderDefaultInterval(t *testing.T) {
	f := newState(t)
	ensure(t, f)
	r, err := NewCertReloader(f.ServerCert(), f.ServerKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.interval != time.Second {
		t.Errorf("check interval = %v, want 1s", r.interval)
	}
	// A nil onError must not panic on a failed reload.
	r.interval = 0
	if err := os.WriteFile(f.ServerCert(), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(f.ServerCert(), time.Unix(1, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if cert, err := r.GetCertificate(nil); cert == nil || err != nil {
		t.Errorf("GetCertificate = %v, %v; want the previous certificate", cert, err)
	}
}

func TestCertReloaderConcurrentUse(t *testing.T) {
	a, b := newState(t), newState(t)
	ensure(t, a)
	ensure(t, b)
	r, err := NewCertReloader(a.ServerCert(), a.ServerKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r.interval = 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if cert, err := r.GetCertificate(nil); cert == nil || err != nil {
					t.Errorf("GetCertificate = %v, %v", cert, err)
					return
				}
			}
		})
	}
	// Swap the files while handshakes go on.
	replaceFile(t, a.ServerCert(), readFile(t, b.ServerCert()), time.Unix(2, 0))
	replaceFile(t, a.ServerKey(), readFile(t, b.ServerKey()), time.Unix(2, 0))
	wg.Wait()
	if !bytes.Equal(servedDER(t, r), certDER(t, b.ServerCert())) {
		t.Error("does not serve the new pair after the swap")
	}
}

func TestNewCertReloaderErrors(t *testing.T) {
	a, b := newState(t), newState(t)
	ensure(t, a)
	ensure(t, b)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name            string
		certFile, key   string
		wantErrMentions string
	}{
		{"missing certificate", filepath.Join(t.TempDir(), "none.crt"), a.ServerKey(), "none.crt"},
		{"missing key", a.ServerCert(), filepath.Join(t.TempDir(), "none.key"), "none.key"},
		{"garbage key", a.ServerCert(), garbage, "garbage.pem"},
		{"key of another pair", a.ServerCert(), b.ServerKey(), a.ServerCert()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCertReloader(tt.certFile, tt.key, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErrMentions) {
				t.Errorf("NewCertReloader error = %v, want one mentioning %q", err, tt.wantErrMentions)
			}
		})
	}
}

func TestLoadCertPool(t *testing.T) {
	f := newState(t)
	ensure(t, f)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caPEM := readFile(t, f.CACert())
	badCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})

	tests := []struct {
		name    string
		path    string
		wantErr bool
	}{
		{"CA certificate", f.CACert(), false},
		{"bundle with a key, a bad certificate and the CA",
			write("mixed.pem", bytes.Join([][]byte{readFile(t, f.CAKey()), badCert, caPEM}, nil)), false},
		{"missing file", filepath.Join(dir, "none.pem"), true},
		{"empty file", write("empty.pem", nil), true},
		{"only a key", write("key.pem", readFile(t, f.CAKey())), true},
		{"only a bad certificate", write("bad.pem", badCert), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := LoadCertPool(tt.path)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.path) {
					t.Errorf("LoadCertPool error = %v, want one naming %s", err, tt.path)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCertPool: %v", err)
			}
			_, err = readCert(t, f.ServerCert()).Verify(x509.VerifyOptions{Roots: pool, CurrentTime: fixedNow})
			if err != nil {
				t.Errorf("server certificate does not verify against the pool: %v", err)
			}
		})
	}
}
