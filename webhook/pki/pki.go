// Package pki creates and loads the certificates of the TokenReview webhook:
// a private CA, the webhook's serving certificate, the client certificate
// kube-apiserver presents to the webhook, and the kubeconfig kube-apiserver
// reads to reach the webhook. It also serves a certificate that is reloaded
// when its files change on disk.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	caCommonName     = "oidc-authenticator CA"
	serverCommonName = "oidc-authenticator"
	clientCommonName = "kube-apiserver"

	caValidityYears   = 10
	leafValidityYears = 5

	// backdate is subtracted from NotBefore so that a peer whose clock is
	// slightly behind still accepts a freshly issued certificate.
	backdate = 5 * time.Minute

	keyMode  fs.FileMode = 0o600
	certMode fs.FileMode = 0o644
	dirMode  fs.FileMode = 0o700

	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
)

// Files names the files of a state directory.
type Files struct{ Dir string }

// CACert is the path of the CA certificate, <Dir>/ca.crt.
func (f Files) CACert() string { return filepath.Join(f.Dir, "ca.crt") }

// CAKey is the path of the CA private key, <Dir>/ca.key.
func (f Files) CAKey() string { return filepath.Join(f.Dir, "ca.key") }

// ServerCert is the path of the webhook's serving certificate, <Dir>/server.crt.
func (f Files) ServerCert() string { return filepath.Join(f.Dir, "server.crt") }

// ServerKey is the path of the webhook's serving key, <Dir>/server.key.
func (f Files) ServerKey() string { return filepath.Join(f.Dir, "server.key") }

// ClientCert is the path of kube-apiserver's client certificate,
// <Dir>/apiserver-client.crt.
func (f Files) ClientCert() string { return filepath.Join(f.Dir, "apiserver-client.crt") }

// ClientKey is the path of kube-apiserver's client key,
// <Dir>/apiserver-client.key.
func (f Files) ClientKey() string { return filepath.Join(f.Dir, "apiserver-client.key") }

// Kubeconfig is the path of the kubeconfig kube-apiserver reads through
// --authentication-token-webhook-config-file,
// <Dir>/apiserver-webhook-kubeconfig.yaml.
func (f Files) Kubeconfig() string { return filepath.Join(f.Dir, "apiserver-webhook-kubeconfig.yaml") }

// Options for Ensure.
type Options struct {
	// Hostnames are DNS names or IP addresses for the server certificate's
	// subject alternative names; 127.0.0.1 and localhost are always added.
	Hostnames []string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// ReissueForHostnames re-issues an existing server certificate, for its
	// existing key, when it lacks one of Hostnames (what `init` asks for);
	// without it an existing server certificate is kept whatever it names.
	ReissueForHostnames bool
	// RenewWithin re-issues the server and client certificates, for their
	// existing keys, when they expire within this window (or have expired);
	// 0 keeps them whatever their expiry. The CA is never replaced.
	RenewWithin time.Duration
	// Jitter returns how much shorter than the full validity a new leaf
	// certificate is made, so that the nodes of a cluster do not all expire
	// together; nil means a random span of up to LeafJitter.
	Jitter func() time.Duration
}

// LeafJitter is the most a leaf certificate's validity is shortened by, at
// random, so that certificates issued on several nodes the same day (by
// init in a DaemonSet) come up for renewal on different days.
const LeafJitter = 7 * 24 * time.Hour

// randomJitter is a random span in [0, LeafJitter), to the second.
func randomJitter() time.Duration {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(LeafJitter/time.Second)))
	if err != nil {
		return 0
	}
	return time.Duration(n.Int64()) * time.Second
}

// Result reports what Ensure did, for the `init` command to print.
type Result struct {
	Created  []string // paths written this time where no file was
	Reissued []string // certificates replaced, for their existing keys, for hostnames
	Renewed  []string // certificates replaced, for their existing keys, before expiry
	Kept     []string // paths that already existed and were left alone
}

// Ensure creates, in f.Dir (created with mode 0700 if missing), whatever is
// missing of:
//
//   - a CA: ECDSA P-256 key, self-signed certificate valid 10 years,
//     CN "oidc-authenticator CA";
//   - a server certificate and key signed by the CA: server auth, valid
//     5 years, subject alternative names opts.Hostnames plus 127.0.0.1 and
//     localhost (IPs as IP SANs, names as DNS SANs, deduplicated);
//   - a client certificate and key for kube-apiserver signed by the CA:
//     client auth, CN "kube-apiserver", valid 5 years.
//
// Keys are written as PKCS#8 PEM with mode 0600, certificates as PEM with
// mode 0644. Every file is written atomically and only where no file exists.
//
// Existing keys are never overwritten. A certificate that exists together
// with its key is kept as it is; with opts.ReissueForHostnames, a server
// certificate lacking one of opts.Hostnames is re-issued for its key. A certificate whose file is missing
// while its key exists is issued anew for that key. A certificate whose key
// is missing, a certificate that does not match its key, or a leaf
// certificate that was not issued by the CA is an error naming the files,
// reported before anything is written.
func Ensure(f Files, opts Options) (Result, error) {
	if f.Dir == "" {
		return Result{}, errors.New("the state directory is not set")
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	dnsNames, ips, err := subjectAltNames(opts.Hostnames)
	if err != nil {
		return Result{}, err
	}

	// Read and check everything before writing anything, so that an
	// inconsistent directory is reported instead of half repaired.
	ca, err := loadPair("CA", f.CACert(), f.CAKey())
	if err != nil {
		return Result{}, err
	}
	server, err := loadPair("server", f.ServerCert(), f.ServerKey())
	if err != nil {
		return Result{}, err
	}
	client, err := loadPair("client", f.ClientCert(), f.ClientKey())
	if err != nil {
		return Result{}, err
	}

	jitter := opts.Jitter
	if jitter == nil {
		jitter = randomJitter
	}
	p := plan{renewWithin: opts.RenewWithin, jitter: jitter}
	if err := p.ca(ca, now()); err != nil {
		return Result{}, err
	}
	serverProfile := leafProfile{
		commonName:  serverCommonName,
		extKeyUsage: x509.ExtKeyUsageServerAuth,
		dnsNames:    dnsNames,
		ips:         ips,
		reissue:     opts.ReissueForHostnames,
	}
	if err := p.leaf(server, ca, serverProfile, now()); err != nil {
		return Result{}, err
	}
	clientProfile := leafProfile{
		commonName:  clientCommonName,
		extKeyUsage: x509.ExtKeyUsageClientAuth,
	}
	if err := p.leaf(client, ca, clientProfile, now()); err != nil {
		return Result{}, err
	}

	if len(p.writes) > 0 {
		if err := ensureDir(f.Dir); err != nil {
			return Result{Kept: p.kept}, err
		}
	}
	res := Result{Kept: p.kept}
	for _, w := range p.writes {
		if err := writeFileAtomic(w.path, w.data, w.mode, w.replace); err != nil {
			return res, err
		}
		switch {
		case w.renew:
			res.Renewed = append(res.Renewed, w.path)
		case w.replace:
			res.Reissued = append(res.Reissued, w.path)
		default:
			res.Created = append(res.Created, w.path)
		}
	}
	return res, nil
}

// pair is what a state directory holds of one certificate and its key.
// Either field is nil when its file does not exist.
type pair struct {
	what              string // "CA", "server" or "client", for messages
	certPath, keyPath string
	cert              *x509.Certificate
	key               crypto.Signer
}

// loadPair reads a certificate and its key where they exist and checks that
// they belong together. A certificate without its key is an error, because
// making it usable again would take a new key in place of the missing one.
func loadPair(what, certPath, keyPath string) (*pair, error) {
	p := &pair{what: what, certPath: certPath, keyPath: keyPath}

	keyPEM, err := os.ReadFile(keyPath)
	switch {
	case err == nil:
		if p.key, err = parsePrivateKey(keyPEM); err != nil {
			return nil, fmt.Errorf("read %s key %s: %w", what, keyPath, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read %s key %s: %w", what, keyPath, err)
	}

	certPEM, err := os.ReadFile(certPath)
	switch {
	case err == nil:
		if p.cert, err = parseCertificate(certPEM); err != nil {
			return nil, fmt.Errorf("read %s certificate %s: %w", what, certPath, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read %s certificate %s: %w", what, certPath, err)
	}

	switch {
	case p.cert != nil && p.key == nil:
		if what == "CA" {
			return nil, fmt.Errorf("CA certificate %s exists but its key %s is missing: "+
				"restore the key, or remove the certificate to create a new CA "+
				"(every certificate issued by the old CA must then be removed too)", certPath, keyPath)
		}
		return nil, fmt.Errorf("%s certificate %s exists but its key %s is missing: "+
			"restore the key, or remove the certificate to have a new key and certificate issued",
			what, certPath, keyPath)
	case p.cert != nil && !publicKeyMatches(p.cert, p.key):
		return nil, fmt.Errorf("%s certificate %s does not match its key %s: "+
			"remove the certificate to have it re-issued for the existing key", what, certPath, keyPath)
	}
	return p, nil
}

// plan collects the files Ensure is going to write and those it keeps.
type plan struct {
	writes      []pendingWrite
	kept        []string
	renewWithin time.Duration
	jitter      func() time.Duration
}

type pendingWrite struct {
	path    string
	data    []byte
	mode    fs.FileMode
	replace bool // an existing file is replaced (a re-issued certificate)
	renew   bool // ... because it expires within the renewal window
}

// ca completes p with a CA: it keeps an existing one, issues a certificate
// for an existing key, or creates both. On return p.cert and p.key are set.
func (pl *plan) ca(p *pair, now time.Time) error {
	if p.key == nil {
		key, keyPEM, err := newKey()
		if err != nil {
			return fmt.Errorf("generate CA key: %w", err)
		}
		p.key = key
		pl.writes = append(pl.writes, pendingWrite{path: p.keyPath, data: keyPEM, mode: keyMode})
	} else {
		pl.kept = append(pl.kept, p.keyPath)
	}

	if p.cert != nil {
		if !p.cert.IsCA || (p.cert.KeyUsage != 0 && p.cert.KeyUsage&x509.KeyUsageCertSign == 0) {
			return fmt.Errorf("CA certificate %s cannot sign certificates (it is not marked as a CA)", p.certPath)
		}
		pl.kept = append(pl.kept, p.certPath)
		return nil
	}

	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(caValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	cert, certPEM, err := createCertificate(tmpl, tmpl, p.key.Public(), p.key)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	p.cert = cert
	pl.writes = append(pl.writes, pendingWrite{path: p.certPath, data: certPEM, mode: certMode})
	return nil
}

// leafProfile describes a certificate the CA issues.
type leafProfile struct {
	commonName  string
	extKeyUsage x509.ExtKeyUsage
	dnsNames    []string
	ips         []net.IP
	// reissue replaces an existing certificate that lacks one of dnsNames or ips.
	reissue bool
}

// covers reports whether cert names every DNS name and IP address of prof.
func (prof leafProfile) covers(cert *x509.Certificate) bool {
	for _, name := range prof.dnsNames {
		if !slices.Contains(cert.DNSNames, name) {
			return false
		}
	}
	for _, ip := range prof.ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// leaf completes p with a certificate and key issued by ca: it keeps an
// existing pair if ca issued it, issues a certificate for an existing key,
// or creates both.
func (pl *plan) leaf(p, ca *pair, prof leafProfile, now time.Time) error {
	replace, renew := false, false
	if p.cert != nil {
		if err := p.cert.CheckSignatureFrom(ca.cert); err != nil {
			return fmt.Errorf("%s certificate %s was not issued by the CA in %s: "+
				"remove the certificate to have it re-issued for its existing key %s: %w",
				p.what, p.certPath, ca.certPath, p.keyPath, err)
		}
		renew = pl.renewWithin > 0 && !now.Add(pl.renewWithin).Before(p.cert.NotAfter)
		if !renew && (!prof.reissue || prof.covers(p.cert)) {
			pl.kept = append(pl.kept, p.keyPath, p.certPath)
			return nil
		}
		replace = true // re-issued below for the existing key, with the requested names
	}

	if now.After(ca.cert.NotAfter) {
		return fmt.Errorf("CA certificate %s expired on %s and cannot issue the %s certificate %s",
			ca.certPath, ca.cert.NotAfter.UTC().Format(time.RFC3339), p.what, p.certPath)
	}

	if p.key == nil {
		key, keyPEM, err := newKey()
		if err != nil {
			return fmt.Errorf("generate %s key: %w", p.what, err)
		}
		p.key = key
		pl.writes = append(pl.writes, pendingWrite{path: p.keyPath, data: keyPEM, mode: keyMode})
	} else {
		pl.kept = append(pl.kept, p.keyPath)
	}

	notAfter := now.AddDate(leafValidityYears, 0, 0).Add(-pl.jitter())
	if notAfter.After(ca.cert.NotAfter) {
		// A certificate cannot usefully outlive its issuer.
		notAfter = ca.cert.NotAfter
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := p.key.(*rsa.PrivateKey); ok {
		usage |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: prof.commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{prof.extKeyUsage},
		BasicConstraintsValid: true,
		DNSNames:              prof.dnsNames,
		IPAddresses:           prof.ips,
	}
	cert, certPEM, err := createCertificate(tmpl, ca.cert, p.key.Public(), ca.key)
	if err != nil {
		return fmt.Errorf("issue %s certificate %s: %w", p.what, p.certPath, err)
	}
	p.cert = cert
	pl.writes = append(pl.writes, pendingWrite{path: p.certPath, data: certPEM, mode: certMode, replace: replace, renew: renew})
	return nil
}

// newKey generates an ECDSA P-256 key and returns it with its PKCS#8 PEM.
func newKey() (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// createCertificate signs tmpl with the issuer's key and returns the parsed
// certificate with its PEM. The serial number is left to crypto/x509, which
// picks a random one.
func createCertificate(tmpl, issuer *x509.Certificate, pub crypto.PublicKey, issuerKey crypto.Signer) (*x509.Certificate, []byte, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, issuerKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), nil
}

// parseCertificate returns the first certificate of a PEM file.
func parseCertificate(data []byte) (*x509.Certificate, error) {
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type == pemCertificate {
			return x509.ParseCertificate(block.Bytes)
		}
	}
	return nil, errors.New("no PEM \"CERTIFICATE\" block found")
}

// parsePrivateKey returns the first private key of a PEM file. Besides the
// PKCS#8 keys Ensure writes, it accepts the PKCS#1 RSA and SEC 1 EC keys
// other tools produce, so that an operator may bring their own keys.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		var (
			key any
			err error
		)
		switch block.Type {
		case pemPrivateKey:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		return signer, nil
	}
	return nil, errors.New("no PEM private key block found")
}

// publicKeyMatches reports whether key is the private half of cert's key.
func publicKeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key.Public())
}

// subjectAltNames splits hostnames, plus 127.0.0.1 and localhost, into DNS
// names and IP addresses, dropping blanks and duplicates.
func subjectAltNames(hostnames []string) ([]string, []net.IP, error) {
	var (
		dnsNames []string
		ips      []net.IP
		seen     = make(map[string]bool)
	)
	all := append(append([]string(nil), hostnames...), "127.0.0.1", "localhost")
	for _, h := range all {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if k := "ip:" + ip.String(); !seen[k] {
				seen[k] = true
				ips = append(ips, ip)
			}
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(h, "."))
		if !validDNSName(name) {
			return nil, nil, fmt.Errorf("invalid hostname %q for the server certificate: "+
				"give a DNS name or an IP address, without scheme, port or path", h)
		}
		if k := "dns:" + name; !seen[k] {
			seen[k] = true
			dnsNames = append(dnsNames, name)
		}
	}
	return dnsNames, ips, nil
}

// validDNSName reports whether name is a lower-case DNS name usable in a
// certificate, optionally with a leading "*." wildcard label.
func validDNSName(name string) bool {
	name = strings.TrimPrefix(name, "*.")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}

// ensureDir creates dir with mode 0700 if it does not exist. An existing
// directory is left as it is.
func ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("check state directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create state directory %s: %w", dir, err)
	}
	// MkdirAll is subject to the umask; make the mode exact.
	if err := os.Chmod(dir, dirMode); err != nil {
		return fmt.Errorf("set mode of state directory %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic writes data to path with the given mode through a
// temporary file in the same directory, so that a reader sees either the
// previous file or the complete new one. With replace, an existing file at
// path is replaced (by rename). Without it, the new file is published with a
// hard link, which fails instead of overwriting a file that appeared at path
// in the meantime.
func writeFileAtomic(path string, data []byte, mode fs.FileMode, replace bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	tmpName := tmp.Name()
	// After a rename this finds nothing; after a link it drops the extra name.
	defer os.Remove(tmpName)

	if err := writeAndClose(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	if replace {
		if err := os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("replace %s: %w", path, err)
		}
	} else if err := publishNew(tmpName, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// writeAndClose sets the mode of f, writes data, flushes it to disk and
// closes f.
func writeAndClose(f *os.File, data []byte, mode fs.FileMode) error {
	err := f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}

// publishNew gives the written temporary file tmpName its final name path,
// refusing to overwrite a file that exists there.
func publishNew(tmpName, path string) error {
	err := os.Link(tmpName, path)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s appeared while it was being created and was left alone: %w", path, err)
	}
	// Some file systems have no hard links: check the name is still free and
	// rename instead.
	if _, statErr := os.Lstat(path); statErr == nil {
		return fmt.Errorf("%s appeared while it was being created and was left alone", path)
	} else if !errors.Is(statErr, fs.ErrNotExist) {
		return fmt.Errorf("check %s: %w", path, statErr)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// syncDir flushes a directory's entries to disk so a completed rename
// survives a crash. It is best effort: some file systems do not support it.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
