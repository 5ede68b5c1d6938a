package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// fixedNow is the clock of the tests that check validity periods.
var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return fixedNow }

// newState returns Files for a state directory that does not exist yet.
func newState(t *testing.T) Files {
	t.Helper()
	return Files{Dir: filepath.Join(t.TempDir(), "state")}
}

// ensure runs Ensure and fails the test on error.
func ensure(t *testing.T, f Files, hostnames ...string) Result {
	t.Helper()
	res, err := Ensure(f, Options{Hostnames: hostnames, Now: clock})
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return res
}

func allFiles(f Files) []string {
	return []string{f.CACert(), f.CAKey(), f.ServerCert(), f.ServerKey(), f.ClientCert(), f.ClientKey()}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := parseCertificate(data)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return cert
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// snapshot returns the names and contents of the files in dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string)
	for _, e := range entries {
		m[e.Name()] = string(readFile(t, filepath.Join(dir, e.Name())))
	}
	return m
}

func caPool(t *testing.T, f Files) *x509.CertPool {
	t.Helper()
	pool, err := LoadCertPool(f.CACert())
	if err != nil {
		t.Fatalf("LoadCertPool: %v", err)
	}
	return pool
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestFilesPaths(t *testing.T) {
	f := Files{Dir: "/var/lib/oidc"}
	tests := []struct{ got, want string }{
		{f.CACert(), "/var/lib/oidc/ca.crt"},
		{f.CAKey(), "/var/lib/oidc/ca.key"},
		{f.ServerCert(), "/var/lib/oidc/server.crt"},
		{f.ServerKey(), "/var/lib/oidc/server.key"},
		{f.ClientCert(), "/var/lib/oidc/apiserver-client.crt"},
		{f.ClientKey(), "/var/lib/oidc/apiserver-client.key"},
		{f.Kubeconfig(), "/var/lib/oidc/apiserver-webhook-kubeconfig.yaml"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}

func TestEnsureCreatesEverything(t *testing.T) {
	f := newState(t)
	res := ensure(t, f, "webhook.example.com", "10.0.0.7", "LOCALHOST", "127.0.0.1", " ", "webhook.example.com.")

	if !sameSet(res.Created, allFiles(f)) || len(res.Kept) != 0 {
		t.Errorf("Result = %+v, want all six files created and none kept", res)
	}

	t.Run("modes", func(t *testing.T) {
		tests := []struct {
			path string
			mode fs.FileMode
		}{
			{f.Dir, fs.ModeDir | 0o700},
			{f.CACert(), 0o644},
			{f.CAKey(), 0o600},
			{f.ServerCert(), 0o644},
			{f.ServerKey(), 0o600},
			{f.ClientCert(), 0o644},
			{f.ClientKey(), 0o600},
		}
		for _, tt := range tests {
			fi, err := os.Stat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tt.mode {
				t.Errorf("%s: mode %v, want %v", tt.path, fi.Mode(), tt.mode)
			}
		}
		if entries, _ := os.ReadDir(f.Dir); len(entries) != 6 {
			t.Errorf("state directory holds %d entries, want 6 (no temporary files left)", len(entries))
		}
	})

	t.Run("keys are PKCS#8 ECDSA P-256", func(t *testing.T) {
		for _, path := range []string{f.CAKey(), f.ServerKey(), f.ClientKey()} {
			block, rest := pem.Decode(readFile(t, path))
			if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
				t.Fatalf("%s: want exactly one PEM \"PRIVATE KEY\" block", path)
			}
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			ec, ok := key.(*ecdsa.PrivateKey)
			if !ok || ec.Curve != elliptic.P256() {
				t.Errorf("%s: key is %T, want ECDSA P-256", path, key)
			}
		}
	})

	ca := readCert(t, f.CACert())
	t.Run("CA", func(t *testing.T) {
		if !ca.IsCA || ca.Subject.CommonName != "oidc-authenticator CA" {
			t.Errorf("CA: IsCA=%v CN=%q", ca.IsCA, ca.Subject.CommonName)
		}
		if want := fixedNow.AddDate(10, 0, 0); !ca.NotAfter.Equal(want) {
			t.Errorf("CA NotAfter = %v, want %v", ca.NotAfter, want)
		}
	})

	pool := caPool(t, f)
	server := readCert(t, f.ServerCert())
	t.Run("server certificate", func(t *testing.T) {
		// Five years, shortened by up to LeafJitter so that nodes do not all expire together.
		if full := fixedNow.AddDate(5, 0, 0); server.NotAfter.After(full) || !server.NotAfter.After(full.Add(-LeafJitter)) {
			t.Errorf("server NotAfter = %v, want within %v before %v", server.NotAfter, LeafJitter, full)
		}
		if !slices.Equal(server.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
			t.Errorf("server ExtKeyUsage = %v, want [ServerAuth]", server.ExtKeyUsage)
		}
		if want := []string{"webhook.example.com", "localhost"}; !slices.Equal(server.DNSNames, want) {
			t.Errorf("server DNS SANs = %q, want %q", server.DNSNames, want)
		}
		var ips []string
		for _, ip := range server.IPAddresses {
			ips = append(ips, ip.String())
		}
		if want := []string{"10.0.0.7", "127.0.0.1"}; !slices.Equal(ips, want) {
			t.Errorf("server IP SANs = %q, want %q", ips, want)
		}
	})

	verify := []struct {
		name    string
		cert    *x509.Certificate
		host    string
		usage   x509.ExtKeyUsage
		wantErr bool
	}{
		{"server for 127.0.0.1", server, "127.0.0.1", x509.ExtKeyUsageServerAuth, false},
		{"server for localhost", server, "localhost", x509.ExtKeyUsageServerAuth, false},
		{"server for custom name", server, "webhook.example.com", x509.ExtKeyUsageServerAuth, false},
		{"server for custom IP", server, "10.0.0.7", x509.ExtKeyUsageServerAuth, false},
		{"server for unknown name", server, "other.example.com", x509.ExtKeyUsageServerAuth, true},
		{"server used as client", server, "", x509.ExtKeyUsageClientAuth, true},
		{"client", readCert(t, f.ClientCert()), "", x509.ExtKeyUsageClientAuth, false},
		{"client used as server", readCert(t, f.ClientCert()), "", x509.ExtKeyUsageServerAuth, true},
	}
	for _, tt := range verify {
		t.Run("verify "+tt.name, func(t *testing.T) {
			_, err := tt.cert.Verify(x509.VerifyOptions{
				DNSName:     tt.host,
				Roots:       pool,
				KeyUsages:   []x509.ExtKeyUsage{tt.usage},
				CurrentTime: fixedNow.Add(time.Hour),
			})
			if (err != nil) != tt.wantErr {
				t.Errorf("Verify error = %v, want error: %v", err, tt.wantErr)
			}
		})
	}

	client := readCert(t, f.ClientCert())
	if client.Subject.CommonName != "kube-apiserver" {
		t.Errorf("client CN = %q, want kube-apiserver", client.Subject.CommonName)
	}
}

func TestEnsureTwiceKeepsEverything(t *testing.T) {
	f := newState(t)
	ensure(t, f, "webhook.example.com")
	before := snapshot(t, f.Dir)

	res := ensure(t, f, "another.example.com")
	if len(res.Created) != 0 || !sameSet(res.Kept, allFiles(f)) {
		t.Errorf("second Result = %+v, want all six files kept and none created", res)
	}
	after := snapshot(t, f.Dir)
	if len(after) != len(before) {
		t.Errorf("directory had %d files, now %d", len(before), len(after))
	}
	for name, data := range before {
		if after[name] != data {
			t.Errorf("%s changed", name)
		}
	}
}

func TestEnsureReissuesMissingCertificate(t *testing.T) {
	tests := []struct {
		name      string
		cert, key func(Files) string
		usage     x509.ExtKeyUsage
	}{
		{"server", Files.ServerCert, Files.ServerKey, x509.ExtKeyUsageServerAuth},
		{"client", Files.ClientCert, Files.ClientKey, x509.ExtKeyUsageClientAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newState(t)
			ensure(t, f)
			keyBefore := readFile(t, tt.key(f))
			if err := os.Remove(tt.cert(f)); err != nil {
				t.Fatal(err)
			}

			res := ensure(t, f, "new.example.com")
			if !slices.Equal(res.Created, []string{tt.cert(f)}) {
				t.Errorf("Created = %q, want only %s", res.Created, tt.cert(f))
			}
			if !slices.Contains(res.Kept, tt.key(f)) {
				t.Errorf("Kept = %q, want it to contain %s", res.Kept, tt.key(f))
			}
			if !bytes.Equal(readFile(t, tt.key(f)), keyBefore) {
				t.Fatalf("%s was rewritten", tt.key(f))
			}
			key, err := parsePrivateKey(keyBefore)
			if err != nil {
				t.Fatal(err)
			}
			cert := readCert(t, tt.cert(f))
			if !publicKeyMatches(cert, key) {
				t.Errorf("re-issued certificate is not for the existing key")
			}
			if _, err := cert.Verify(x509.VerifyOptions{
				Roots:       caPool(t, f),
				KeyUsages:   []x509.ExtKeyUsage{tt.usage},
				CurrentTime: fixedNow,
			}); err != nil {
				t.Errorf("re-issued certificate does not verify: %v", err)
			}
		})
	}
}

func TestEnsureReissuesCACertificateForExistingKey(t *testing.T) {
	f := newState(t)
	ensure(t, f)
	if err := os.Remove(f.CACert()); err != nil {
		t.Fatal(err)
	}
	res := ensure(t, f)
	if !slices.Equal(res.Created, []string{f.CACert()}) {
		t.Errorf("Created = %q, want only %s", res.Created, f.CACert())
	}
	// The leaves were issued by the same key and name, so they still verify.
	if _, err := readCert(t, f.ServerCert()).Verify(x509.VerifyOptions{
		DNSName:     "localhost",
		Roots:       caPool(t, f),
		CurrentTime: fixedNow,
	}); err != nil {
		t.Errorf("server certificate does not verify against the new CA certificate: %v", err)
	}
}

func TestEnsureRefusesInconsistentState(t *testing.T) {
	// A complete state directory to copy files from.
	src := newState(t)
	ensure(t, src)
	other := newState(t)
	ensure(t, other)

	tests := []struct {
		name    string
		files   func(dst Files) map[string]string // destination path -> source path
		wantErr []string                          // must all appear in the error
	}{
		{
			name:    "CA certificate without CA key",
			files:   func(dst Files) map[string]string { return map[string]string{dst.CACert(): src.CACert()} },
			wantErr: []string{"ca.crt", "ca.key", "missing"},
		},
		{
			name: "server certificate without its key",
			files: func(dst Files) map[string]string {
				return map[string]string{dst.ServerCert(): src.ServerCert()}
			},
			wantErr: []string{"server.crt", "server.key", "missing"},
		},
		{
			name: "client certificate does not match its key",
			files: func(dst Files) map[string]string {
				return map[string]string{dst.ClientCert(): src.ClientCert(), dst.ClientKey(): other.ClientKey()}
			},
			wantErr: []string{"apiserver-client.crt", "apiserver-client.key", "does not match"},
		},
		{
			name: "server pair from another CA",
			files: func(dst Files) map[string]string {
				return map[string]string{
					dst.CACert(): src.CACert(), dst.CAKey(): src.CAKey(),
					dst.ServerCert(): other.ServerCert(), dst.ServerKey(): other.ServerKey(),
				}
			},
			wantErr: []string{"server.crt", "ca.crt", "not issued by the CA"},
		},
		{
			name: "server pair without any CA",
			files: func(dst Files) map[string]string {
				return map[string]string{dst.ServerCert(): src.ServerCert(), dst.ServerKey(): src.ServerKey()}
			},
			wantErr: []string{"server.crt", "not issued by the CA"},
		},
		{
			name:    "garbage CA key",
			files:   func(dst Files) map[string]string { return map[string]string{dst.CAKey(): src.CACert()} },
			wantErr: []string{"ca.key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := Files{Dir: t.TempDir()}
			for to, from := range tt.files(dst) {
				if err := os.WriteFile(to, readFile(t, from), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := snapshot(t, dst.Dir)

			res, err := Ensure(dst, Options{})
			if err == nil {
				t.Fatalf("Ensure succeeded with %+v, want an error", res)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if len(res.Created) != 0 {
				t.Errorf("Created = %q, want nothing", res.Created)
			}
			after := snapshot(t, dst.Dir)
			if len(after) != len(before) {
				t.Errorf("directory had %d files, now %d", len(before), len(after))
			}
			for name, data := range before {
				if after[name] != data {
					t.Errorf("%s changed", name)
				}
			}
		})
	}
}

func TestEnsureRejectsBadHostnames(t *testing.T) {
	tests := []string{"https://webhook.example.com", "webhook.example.com:8443", "-bad.example.com", "under_score", "a..b"}
	for _, h := range tests {
		t.Run(h, func(t *testing.T) {
			f := newState(t)
			if _, err := Ensure(f, Options{Hostnames: []string{h}}); err == nil || !strings.Contains(err.Error(), h) {
				t.Errorf("Ensure error = %v, want one naming %q", err, h)
			}
			if _, err := os.Stat(f.Dir); !os.IsNotExist(err) {
				t.Errorf("state directory was created despite the error")
			}
		})
	}
}

func TestWriteKubeconfig(t *testing.T) {
	f := newState(t)
	ensure(t, f)
	const url = "https://127.0.0.1:21362/authenticate"

	// Write twice: the second write must replace the first.
	if err := WriteKubeconfig(f, "https://old.example.com/authenticate"); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}
	if err := WriteKubeconfig(f, url); err != nil {
		t.Fatalf("WriteKubeconfig again: %v", err)
	}

	fi, err := os.Stat(f.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("kubeconfig mode %v, want 0600", fi.Mode())
	}

	cfg, err := clientcmd.LoadFromFile(f.Kubeconfig())
	if err != nil {
		t.Fatalf("LoadFromFile: %v", err)
	}
	if cfg.CurrentContext != "webhook" {
		t.Errorf("current-context = %q, want webhook", cfg.CurrentContext)
	}
	ctx := cfg.Contexts["webhook"]
	if ctx == nil || ctx.Cluster != "oidc-authenticator" || ctx.AuthInfo != "kube-apiserver" {
		t.Fatalf("context webhook = %+v", ctx)
	}
	cluster := cfg.Clusters["oidc-authenticator"]
	if cluster == nil {
		t.Fatal("no cluster oidc-authenticator")
	}
	if cluster.Server != url {
		t.Errorf("server = %q, want %q", cluster.Server, url)
	}
	if !bytes.Equal(cluster.CertificateAuthorityData, readFile(t, f.CACert())) {
		t.Errorf("certificate-authority-data is not the CA certificate")
	}
	user := cfg.AuthInfos["kube-apiserver"]
	if user == nil {
		t.Fatal("no user kube-apiserver")
	}
	if !bytes.Equal(user.ClientCertificateData, readFile(t, f.ClientCert())) {
		t.Errorf("client-certificate-data is not the client certificate")
	}
	if !bytes.Equal(user.ClientKeyData, readFile(t, f.ClientKey())) {
		t.Errorf("client-key-data is not the client key")
	}
	if entries, _ := os.ReadDir(f.Dir); len(entries) != 7 {
		t.Errorf("state directory holds %d entries, want 7 (no temporary files left)", len(entries))
	}
}

func TestWriteKubeconfigErrors(t *testing.T) {
	other := newState(t)
	ensure(t, other)

	tests := []struct {
		name    string
		setup   func(t *testing.T, f Files)
		url     string
		wantErr string
	}{
		{"plain http URL", nil, "http://127.0.0.1:21362/authenticate", "https://"},
		{"relative URL", nil, "/authenticate", "https://"},
		{"missing client key", func(t *testing.T, f Files) {
			if err := os.Remove(f.ClientKey()); err != nil {
				t.Fatal(err)
			}
		}, "https://127.0.0.1/authenticate", "apiserver-client.key"},
		{"client pair from another CA", func(t *testing.T, f Files) {
			for _, p := range [][2]string{{f.ClientCert(), other.ClientCert()}, {f.ClientKey(), other.ClientKey()}} {
				if err := os.WriteFile(p[0], readFile(t, p[1]), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}, "https://127.0.0.1/authenticate", "not issued by the CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newState(t)
			ensure(t, f)
			if tt.setup != nil {
				tt.setup(t, f)
			}
			err := WriteKubeconfig(f, tt.url)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("WriteKubeconfig error = %v, want one mentioning %q", err, tt.wantErr)
			}
			if _, err := os.Stat(f.Kubeconfig()); !os.IsNotExist(err) {
				t.Errorf("kubeconfig was written despite the error")
			}
		})
	}
}

// Rule: with ReissueForHostnames, a server certificate that lacks a requested name is
// re-issued for its existing key (nothing else changes); one that names everything asked for
// is kept byte for byte; without the option it is kept whatever it names.
func TestEnsureReissuesServerCertificateForNewHostname(t *testing.T) {
	f := newState(t)
	ensure(t, f, "webhook.example.com")
	before := snapshot(t, f.Dir)

	// Without the option (the server's own start-up): kept.
	if res := ensure(t, f, "other.example.com"); len(res.Reissued) != 0 || len(res.Created) != 0 {
		t.Fatalf("without ReissueForHostnames: %+v", res)
	}

	// Already named (and the defaults): kept, with the option too.
	res, err := Ensure(f, Options{Hostnames: []string{"webhook.example.com", "127.0.0.1"}, Now: clock, ReissueForHostnames: true})
	if err != nil || len(res.Reissued) != 0 || len(res.Created) != 0 || !sameSet(res.Kept, allFiles(f)) {
		t.Fatalf("names already in the certificate: %+v, %v", res, err)
	}

	for _, host := range []string{"other.example.com", "10.0.0.7"} {
		res, err = Ensure(f, Options{Hostnames: []string{host}, Now: clock, ReissueForHostnames: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Reissued, []string{f.ServerCert()}) || len(res.Created) != 0 {
			t.Fatalf("%s: Result = %+v, want only %s re-issued", host, res, f.ServerCert())
		}
		cert := readCert(t, f.ServerCert())
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("re-issued certificate does not name %s: %v", host, err)
		}
		if err := cert.VerifyHostname("127.0.0.1"); err != nil {
			t.Errorf("re-issued certificate lost 127.0.0.1: %v", err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: caPool(t, f), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, CurrentTime: fixedNow}); err != nil {
			t.Errorf("re-issued certificate does not verify: %v", err)
		}
	}
	after := snapshot(t, f.Dir)
	for name, data := range before {
		if changed := after[name] != data; changed != (name == filepath.Base(f.ServerCert())) {
			t.Errorf("%s changed: %v", name, changed)
		}
	}
}

// Rule: EnsureKubeconfig writes the kubeconfig when it is missing, leaves it untouched when it
// already says the same (same bytes, same modification time), and replaces it when the URL
// or the certificates it embeds change.
func TestEnsureKubeconfig(t *testing.T) {
	f := newState(t)
	ensure(t, f)
	const url = "https://127.0.0.1:21362/authenticate"
	step := func(serverURL string, want KubeconfigOutcome) {
		t.Helper()
		got, err := EnsureKubeconfig(f, serverURL)
		if err != nil || got != want {
			t.Fatalf("EnsureKubeconfig(%s) = %q, %v; want %q", serverURL, got, err, want)
		}
	}
	step(url, KubeconfigCreated)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(f.Kubeconfig(), old, old); err != nil {
		t.Fatal(err)
	}
	step(url, KubeconfigKept)
	if st, _ := os.Stat(f.Kubeconfig()); !st.ModTime().Equal(old) {
		t.Errorf("a kept kubeconfig was rewritten (mtime %v)", st.ModTime())
	}
	step("https://127.0.0.1:31000/authenticate", KubeconfigUpdated)
	step("https://127.0.0.1:31000/authenticate", KubeconfigKept)
	if err := os.Chmod(f.Kubeconfig(), 0o644); err != nil {
		t.Fatal(err)
	}
	step("https://127.0.0.1:31000/authenticate", KubeconfigUpdated)
	if st, _ := os.Stat(f.Kubeconfig()); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v after the update, want 0600", st.Mode().Perm())
	}
	// A re-issued client certificate changes what the kubeconfig embeds.
	if err := os.Remove(f.ClientCert()); err != nil {
		t.Fatal(err)
	}
	ensure(t, f)
	step("https://127.0.0.1:31000/authenticate", KubeconfigUpdated)
	if _, err := EnsureKubeconfig(f, "http://127.0.0.1/authenticate"); err == nil {
		t.Error("an http URL was accepted")
	}
}
