package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// defaultCheckInterval is how often CertReloader looks at its files at most.
const defaultCheckInterval = time.Second

// CertReloader serves the current certificate from a certificate/key file
// pair, re-reading the files when either changes on disk. A change is a
// different modification time or size, looked for at most once per second,
// so a handshake costs at most one pair of stat calls per second. stat
// follows symlinks, so files replaced by rename and kubelet-style symlink
// swaps are both noticed.
//
// A failed reload keeps serving the previous pair and reports the error
// through the onError callback given to NewCertReloader. The same change is
// not retried or reported again; the next change to either file is.
//
// A CertReloader is safe for concurrent use.
type CertReloader struct {
	certFile, keyFile string
	onError           func(error)

	// interval and now are fields, not constants, so tests can drive them.
	interval time.Duration
	now      func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	lastCheck time.Time
	seen      [2]fileStamp // stamps of the files at the last load attempt
}

// fileStamp identifies a version of a file well enough to notice a change.
type fileStamp struct {
	modTime time.Time
	size    int64
	missing bool // stat failed
}

// NewCertReloader loads certFile and keyFile and returns a reloader serving
// them. It fails if this first load fails. onError, which may be nil, is
// called with the error of every later failed reload.
func NewCertReloader(certFile, keyFile string, onError func(error)) (*CertReloader, error) {
	r := &CertReloader{
		certFile: certFile,
		keyFile:  keyFile,
		onError:  onError,
		interval: defaultCheckInterval,
		now:      time.Now,
	}
	stamps, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert, r.seen, r.lastCheck = cert, stamps, r.now()
	return r, nil
}

// GetCertificate returns the current certificate. It has the signature of
// tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := r.refresh()
	if err != nil && r.onError != nil {
		r.onError(err)
	}
	return cert, nil
}

// refresh reloads the files if they changed since the last attempt and the
// check interval has passed, and returns the certificate to serve along with
// the error of a failed reload.
func (r *CertReloader) refresh() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	now := r.now()
	if now.Sub(r.lastCheck) < r.interval && !now.Before(r.lastCheck) {
		return r.cert, nil
	}
	r.lastCheck = now

	stamps, statErr := r.stat()
	if stamps == r.seen {
		return r.cert, nil
	}
	// Whatever the outcome, do not try this version of the files again.
	r.seen = stamps
	if statErr != nil {
		return r.cert, fmt.Errorf("%w; still serving the previous certificate", statErr)
	}
	cert, err := r.load()
	if err != nil {
		return r.cert, fmt.Errorf("%w; still serving the previous certificate", err)
	}
	r.cert = cert
	return r.cert, nil
}

// stat returns the stamps of the certificate and key files. A file that
// cannot be stat'ed gets a "missing" stamp and its error is returned.
func (r *CertReloader) stat() ([2]fileStamp, error) {
	var (
		stamps [2]fileStamp
		errs   []error
	)
	for i, name := range [2]string{r.certFile, r.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			stamps[i] = fileStamp{missing: true}
			errs = append(errs, fmt.Errorf("check %s: %w", name, err))
			continue
		}
		stamps[i] = fileStamp{modTime: fi.ModTime(), size: fi.Size()}
	}
	return stamps, errors.Join(errs...)
}

// load reads and parses the certificate and key files.
func (r *CertReloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("load server certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	return &cert, nil
}

// LoadCertPool reads a PEM bundle, such as a client CA file, into a
// certificate pool. Blocks other than certificates, and certificates that do
// not parse, are skipped; it is an error if no certificate parses.
func LoadCertPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	var (
		added    int
		firstErr error
	)
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != pemCertificate {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		pool.AddCert(cert)
		added++
	}
	if added == 0 {
		if firstErr != nil {
			return nil, fmt.Errorf("CA bundle %s: no certificate could be parsed: %w", path, firstErr)
		}
		return nil, fmt.Errorf("CA bundle %s contains no PEM \"CERTIFICATE\" block", path)
	}
	return pool, nil
}

// NotAfter is when the certificate served now expires; false before one is loaded.
func (r *CertReloader) NotAfter() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert == nil || r.cert.Leaf == nil {
		return time.Time{}, false
	}
	return r.cert.Leaf.NotAfter, true
}

// FileNotAfter returns a function that reads the first certificate of a PEM file and returns
// when it expires; false when the file cannot be read or parsed.
func FileNotAfter(path string) func() (time.Time, bool) {
	return func() (time.Time, bool) {
		data, err := os.ReadFile(path)
		if err != nil {
			return time.Time{}, false
		}
		cert, err := parseCertificate(data)
		if err != nil {
			return time.Time{}, false
		}
		return cert.NotAfter, true
	}
}

// ReadCertificate reads the first certificate of a PEM file.
func ReadCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate %s: %w", path, err)
	}
	cert, err := parseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("read certificate %s: %w", path, err)
	}
	return cert, nil
}
