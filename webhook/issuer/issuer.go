// Package issuer verifies the id_tokens of one configured OIDC issuer: it discovers the
// issuer in the background, keeps its signing keys, checks each token as go-oidc's verifier
// does and turns the token's claims into a Kubernetes user as kube-apiserver's JWT
// authenticator does.
package issuer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
)

// Defaults for Options.
const (
	DefaultKeyRefreshInterval = 10 * time.Second
	DefaultHTTPTimeout        = 10 * time.Second
	maxDiscoveryBytes         = 1 << 20
)

// Options tune an Issuer.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// KeyRefreshInterval is the least time between two JWKS fetches caused by unknown keys.
	KeyRefreshInterval time.Duration
	// HTTPTimeout bounds each discovery and JWKS request.
	HTTPTimeout time.Duration
	// Observer, if set, is told about fetches and readiness.
	Observer Observer
}

// Observer is told what an issuer fetches; metrics implement it.
type Observer interface {
	DiscoveryFetched(issuer string, err error)
	KeysFetched(issuer string, keys int, err error)
	IssuerReady(issuer string, ready bool)
}

// Status is an issuer's state, for /readyz.
type Status struct {
	URL     string
	Ready   bool
	Message string
}

// Issuer verifies tokens of one jwt[] entry.
type Issuer struct {
	cfg    config.JWTAuthenticator
	opts   Options
	client *http.Client
	keys   *keySet

	// ready holds the key set once discovery and the first key fetch succeeded.
	ready atomic.Pointer[keySet]

	mu     sync.Mutex
	status Status
}

// New prepares an issuer; nothing is fetched until Run.
func New(cfg config.JWTAuthenticator, opts Options) (*Issuer, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.KeyRefreshInterval <= 0 {
		opts.KeyRefreshInterval = DefaultKeyRefreshInterval
	}
	if opts.HTTPTimeout <= 0 {
		opts.HTTPTimeout = DefaultHTTPTimeout
	}
	if cfg.WritesExpressions() && cfg.Expressions == nil {
		// Never serve with rules that would be skipped: validation compiles them.
		return nil, fmt.Errorf("issuer %s: its CEL expressions are not compiled; validate the configuration first", cfg.Issuer.URL)
	}
	client, err := httpClient(cfg.Issuer.CertificateAuthority, opts.HTTPTimeout)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", cfg.Issuer.URL, err)
	}
	i := &Issuer{cfg: cfg, opts: opts, client: client}
	i.status = Status{URL: cfg.Issuer.URL, Message: "discovery has not run yet"}
	return i, nil
}

func httpClient(caPEM string, timeout time.Duration) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("certificateAuthority holds no PEM certificate")
		}
		t.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: t, Timeout: timeout}, nil
}

// URL is the issuer URL tokens must carry in iss.
func (i *Issuer) URL() string { return i.cfg.Issuer.URL }

// Status reports whether the issuer can verify tokens, and if not, why. A ready issuer whose
// keys can no longer be refreshed stays ready (tokens signed by the keys it has keep
// verifying) and says so.
func (i *Issuer) Status() Status {
	i.mu.Lock()
	st := i.status
	i.mu.Unlock()
	keys := i.ready.Load()
	if !st.Ready || keys == nil {
		return st
	}
	h := keys.state()
	st.Message = fmt.Sprintf("%d signing keys from %s, fetched at %s", h.keys, keys.url, stamp(h.lastOK))
	if h.failures > 0 {
		st.Message += fmt.Sprintf("; refreshing them failed %d times since (last: %v): tokens signed by a key not yet seen are undecided; next attempt not before %s",
			h.failures, h.lastErr, stamp(h.next))
	}
	return st
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (i *Issuer) setStatus(ready bool, msg string) {
	i.mu.Lock()
	i.status.Ready, i.status.Message = ready, msg
	i.mu.Unlock()
	if i.opts.Observer != nil {
		i.opts.Observer.IssuerReady(i.URL(), ready)
	}
}

// Run discovers the issuer and loads its keys, retrying with backoff until it succeeds or
// ctx ends. Tokens of this issuer are answered "not decided yet" until then.
func (i *Issuer) Run(ctx context.Context) {
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 1 << 30, Cap: 30 * time.Second}
	for {
		err := i.discover(ctx)
		if err == nil {
			i.opts.Logger.Info("issuer ready", "issuer", i.URL())
			return
		}
		delay := backoff.Step()
		i.setStatus(false, err.Error())
		i.opts.Logger.Warn("issuer not ready; retrying", "issuer", i.URL(), "retryIn", delay.Round(time.Millisecond).String(), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// WaitReady blocks until the issuer is ready or ctx ends.
func (i *Issuer) WaitReady(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !i.Status().Ready {
		select {
		case <-ctx.Done():
			return fmt.Errorf("issuer %s is not ready: %s", i.URL(), i.Status().Message)
		case <-t.C:
		}
	}
	return nil
}

type discoveryDocument struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

func (i *Issuer) discover(ctx context.Context) error {
	doc, err := i.fetchDiscovery(ctx)
	if i.opts.Observer != nil {
		i.opts.Observer.DiscoveryFetched(i.URL(), err)
	}
	if err != nil {
		return err
	}
	if i.keys == nil || i.keys.url != doc.JWKSURI {
		i.keys = &keySet{
			url: doc.JWKSURI, client: i.client, minInterval: i.opts.KeyRefreshInterval, now: i.opts.Now,
			onFetch: func(n int, err error) {
				if i.opts.Observer != nil {
					i.opts.Observer.KeysFetched(i.URL(), n, err)
				}
				if err != nil {
					i.opts.Logger.Warn("fetching signing keys failed", "issuer", i.URL(), "err", err)
				}
			},
		}
	}
	n, err := i.keys.prime(ctx)
	if err != nil {
		return err
	}
	i.ready.Store(i.keys)
	i.setStatus(true, fmt.Sprintf("%d signing keys from %s", n, doc.JWKSURI))
	return nil
}

func (i *Issuer) discoveryURL() string {
	if u := i.cfg.Issuer.DiscoveryURL; u != "" {
		return u
	}
	return strings.TrimSuffix(i.URL(), "/") + "/.well-known/openid-configuration"
}

func (i *Issuer) fetchDiscovery(ctx context.Context) (*discoveryDocument, error) {
	u := i.discoveryURL()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("discovery %s: %w", u, err)
	}
	resp, err := i.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBytes))
	if err != nil {
		return nil, fmt.Errorf("discovery %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery %s: HTTP %s", u, resp.Status)
	}
	var doc discoveryDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("discovery %s: the document is not JSON: %w", u, err)
	}
	if doc.Issuer != i.URL() {
		return nil, fmt.Errorf("discovery %s: the document names issuer %q, but the configuration says %q; they must be identical (mind trailing slashes)", u, doc.Issuer, i.URL())
	}
	if doc.JWKSURI == "" {
		return nil, fmt.Errorf("discovery %s: the document has no jwks_uri", u)
	}
	return &doc, nil
}
