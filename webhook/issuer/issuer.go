// Package issuer verifies the id_tokens of one configured OIDC issuer: it discovers the
// issuer in the background with go-oidc, keeps its signing keys, has go-oidc's verifier
// accept or refuse each token (verify.go), resolves distributed claims, and turns the token's
// claims into a Kubernetes user as kube-apiserver's JWT authenticator does.
package issuer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	gocache "github.com/patrickmn/go-cache"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/claims"
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
	// Clock tells the time and schedules key fetches; nil means the real clock.
	Clock clock.WithDelayedExecution
	// KeyRefreshInterval is the least time between two JWKS fetches caused by unknown keys.
	KeyRefreshInterval time.Duration
	// HTTPTimeout bounds each discovery and JWKS request.
	HTTPTimeout time.Duration
	// Observer, if set, is told about fetches and readiness.
	Observer Observer
	// PersistDir, when set, is where the issuer keeps its last good discovery document and
	// keys for the next run (persist.go); "" keeps nothing.
	PersistDir string
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
	// mapper turns the claims of an accepted token into its identity.
	mapper *claims.Mapper
	// distributed remembers resolved distributed claims until their JWT expires.
	distributed *gocache.Cache

	// ready holds the key set and go-oidc's verifier once discovery and the first key fetch
	// succeeded.
	ready atomic.Pointer[verifier]

	mu     sync.Mutex
	status Status
	// discovery is the raw discovery document of the last successful discovery, to persist
	// with the keys; saved is what was persisted last (persist.go).
	discovery []byte
	saved     savedState
	// refreshErr is why the live discovery has failed so far while keys of a previous run
	// (or configuration) serve.
	refreshErr string
}

// New prepares an issuer; nothing is fetched until Run.
func New(cfg config.JWTAuthenticator, opts Options) (*Issuer, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.KeyRefreshInterval <= 0 {
		opts.KeyRefreshInterval = DefaultKeyRefreshInterval
	}
	if opts.HTTPTimeout <= 0 {
		opts.HTTPTimeout = DefaultHTTPTimeout
	}
	mapper, err := claims.NewMapper(cfg.Issuer.URL, cfg)
	if err != nil {
		return nil, err
	}
	i := &Issuer{cfg: cfg, opts: opts, mapper: mapper, distributed: newDistributedCache()}
	client, err := i.httpClient(opts.HTTPTimeout)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", cfg.Issuer.URL, err)
	}
	i.client = client
	i.status = Status{URL: cfg.Issuer.URL, Message: "discovery has not run yet"}
	return i, nil
}

// httpClient is the client for discovery, keys and distributed claims: the issuer's CA when
// one is configured, each request bounded in time and size.
func (i *Issuer) httpClient(timeout time.Duration) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM := i.cfg.Issuer.CertificateAuthority; caPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("certificateAuthority holds no PEM certificate")
		}
		t.TLSClientConfig.RootCAs = pool
	}
	rt := &discoveryRewrite{base: t, from: i.wellKnownURL()}
	if d := i.cfg.Issuer.DiscoveryURL; d != "" {
		u, err := url.Parse(d)
		if err != nil {
			return nil, fmt.Errorf("discoveryURL: %w", err)
		}
		rt.to = u
	}
	return &http.Client{Transport: rt, Timeout: timeout}, nil
}

// ValidatesUsers reports whether the issuer has userValidationRules.
func (i *Issuer) ValidatesUsers() bool { return i.mapper.ValidatesUsers() }

// ValidateUser applies the userValidationRules to the final user (authn.UserValidator).
func (i *Issuer) ValidateUser(ctx context.Context, u authn.User) error {
	return i.mapper.ValidateUser(ctx, u)
}

// URL is the issuer URL tokens must carry in iss.
func (i *Issuer) URL() string { return i.cfg.Issuer.URL }

// Status reports whether the issuer can verify tokens, and if not, why. A ready issuer whose
// keys can no longer be refreshed stays ready (tokens signed by the keys it has keep
// verifying) and says so.
func (i *Issuer) Status() Status {
	i.mu.Lock()
	st, refreshErr := i.status, i.refreshErr
	i.mu.Unlock()
	v := i.ready.Load()
	if !st.Ready || v == nil {
		return st
	}
	keys := v.keys
	h := keys.state()
	if !h.previousRun.IsZero() {
		st.Message = fmt.Sprintf("%d signing keys from the previous run (saved at %s), not yet refreshed from %s", h.keys, stamp(h.previousRun), keys.url)
	} else {
		st.Message = fmt.Sprintf("%d signing keys from %s, fetched at %s", h.keys, keys.url, stamp(h.lastOK))
		if h.failures > 0 {
			st.Message += fmt.Sprintf("; refreshing them failed %d times since (last: %v): tokens signed by a key not yet seen are undecided; next attempt not before %s",
				h.failures, h.lastErr, stamp(h.next))
		}
	}
	if refreshErr != "" {
		st.Message += "; " + refreshErr
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
	if i.ready.Load() == nil {
		i.restore(ctx)
	}
	for {
		err := i.discover(ctx)
		if err == nil {
			i.opts.Logger.Info("issuer ready", "issuer", i.URL())
			return
		}
		if ctx.Err() != nil {
			return // stopped (e.g. removed by a reconfiguration): nothing to report
		}
		delay := backoff.Step()
		if i.ready.Load() != nil {
			// Keys of a previous run keep verifying tokens meanwhile.
			i.mu.Lock()
			i.refreshErr = fmt.Sprintf("refreshing them failed (retry in %s): %v", delay.Round(time.Millisecond), err)
			i.mu.Unlock()
			i.setStatus(true, err.Error())
		} else {
			i.setStatus(false, err.Error())
		}
		i.opts.Logger.Warn("issuer not ready; retrying", "issuer", i.URL(), "retryIn", delay.Round(time.Millisecond).String(), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// Inherit makes the issuer ready at once with the keys of prev, the same issuer under its
// previous configuration (other audiences, claim mappings or rules), when both fetch from the
// same place with the same trust: url, discoveryURL and certificateAuthority unchanged. The
// new configuration applies to every token from then on; Run then discovers the issuer again
// and replaces the keys. It reports whether prev had keys to give. Call it before Run.
func (i *Issuer) Inherit(prev *Issuer) bool {
	if prev == nil || prev.cfg.Issuer.URL != i.cfg.Issuer.URL || prev.cfg.Issuer.DiscoveryURL != i.cfg.Issuer.DiscoveryURL ||
		prev.cfg.Issuer.CertificateAuthority != i.cfg.Issuer.CertificateAuthority {
		return false
	}
	v := prev.ready.Load()
	if v == nil {
		return false
	}
	i.ready.Store(i.newVerifier(v.keys))
	i.setStatus(true, "")
	return true
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

// discover reads the issuer's discovery document with go-oidc (which requires its issuer to
// be the configured one, byte for byte), loads the key set it names, and makes the verifier
// ready. The background key fetches of the key set end with ctx.
func (i *Issuer) discover(ctx context.Context) error {
	jwksURI, doc, err := i.discoverKeys(ctx)
	if i.opts.Observer != nil {
		i.opts.Observer.DiscoveryFetched(i.URL(), err)
	}
	if err != nil {
		return err
	}
	i.mu.Lock()
	i.discovery = doc
	i.mu.Unlock()
	if i.keys == nil || i.keys.url != jwksURI {
		i.keys = i.newKeySet(ctx, jwksURI)
	}
	n, err := i.keys.prime(ctx)
	if err != nil {
		return err
	}
	i.ready.Store(i.newVerifier(i.keys))
	i.mu.Lock()
	i.refreshErr = ""
	i.mu.Unlock()
	i.setStatus(true, fmt.Sprintf("%d signing keys from %s", n, jwksURI))
	return nil
}

// newKeySet is the key set at jwksURI; its background fetches end with ctx.
func (i *Issuer) newKeySet(ctx context.Context, jwksURI string) *keySet {
	return &keySet{
		url: jwksURI, client: i.client, minInterval: i.opts.KeyRefreshInterval, clock: i.opts.Clock, ctx: ctx,
		onFetch: func(n int, err error) {
			if i.opts.Observer != nil {
				i.opts.Observer.KeysFetched(i.URL(), n, err)
			}
			if err != nil {
				i.opts.Logger.Warn("fetching signing keys failed", "issuer", i.URL(), "err", err)
			}
		},
		onKeys: i.persist,
	}
}

// discoverKeys returns the jwks_uri of the issuer's discovery document, and the document.
func (i *Issuer) discoverKeys(ctx context.Context) (string, []byte, error) {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, i.client), i.URL())
	if err != nil {
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return "", nil, fmt.Errorf("discovery %s: the document names issuer %q, but the configuration says %q; they must be identical (mind trailing slashes)",
				i.discoveryURL(), mismatch.Discovered, mismatch.Provided)
		}
		return "", nil, fmt.Errorf("discovery %s: %w", i.discoveryURL(), err)
	}
	var raw json.RawMessage
	if err := p.Claims(&raw); err != nil {
		return "", nil, fmt.Errorf("discovery %s: %w", i.discoveryURL(), err)
	}
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", nil, fmt.Errorf("discovery %s: %w", i.discoveryURL(), err)
	}
	if doc.JWKSURI == "" {
		return "", nil, fmt.Errorf("discovery %s: the document has no jwks_uri", i.discoveryURL())
	}
	return doc.JWKSURI, raw, nil
}

// wellKnownURL is where go-oidc looks for the discovery document of the issuer.
func (i *Issuer) wellKnownURL() string {
	return strings.TrimSuffix(i.URL(), "/") + "/.well-known/openid-configuration"
}

func (i *Issuer) discoveryURL() string {
	if u := i.cfg.Issuer.DiscoveryURL; u != "" {
		return u
	}
	return i.wellKnownURL()
}

// discoveryRewrite sends go-oidc's request for the well-known discovery document to the
// configured discoveryURL instead, as kube-apiserver does, and bounds every response body.
type discoveryRewrite struct {
	base http.RoundTripper
	from string
	to   *url.URL
}

func (t *discoveryRewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.to != nil && req.Method == http.MethodGet && req.URL.String() == t.from {
		req = req.Clone(req.Context())
		req.Host = ""
		req.URL = t.to
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = http.MaxBytesReader(nil, resp.Body, maxDiscoveryBytes)
	return resp, nil
}
