package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
)

// managedIssuer is one running issuer and the jwt[] entry it was built from.
type managedIssuer struct {
	is    *issuer.Issuer
	entry string             // fingerprint of the entry: an issuer is kept while it is unchanged
	stop  context.CancelFunc // ends its Run; nil until started (under Service.mu)
	done  chan struct{}      // closed when its Run has returned
}

// issuerSet is the issuers of one configuration, in the file's order.
type issuerSet struct{ all []*managedIssuer }

func (set *issuerSet) list() []*issuer.Issuer {
	out := make([]*issuer.Issuer, len(set.all))
	for i, m := range set.all {
		out[i] = m.is
	}
	return out
}

func (set *issuerSet) urls() []string {
	out := make([]string, len(set.all))
	for i, m := range set.all {
		out[i] = m.is.URL()
	}
	return out
}

func (set *issuerSet) verifiers() map[string]authn.Verifier {
	out := make(map[string]authn.Verifier, len(set.all))
	for _, m := range set.all {
		out[m.is.URL()] = m.is
	}
	return out
}

func (set *issuerSet) userValidators() map[string]authn.UserValidator {
	out := map[string]authn.UserValidator{}
	for _, m := range set.all {
		if m.is.ValidatesUsers() {
			out[m.is.URL()] = m.is
		}
	}
	return out
}

func (set *issuerSet) find(url string) *managedIssuer {
	if set == nil {
		return nil
	}
	for _, m := range set.all {
		if m.is.URL() == url {
			return m
		}
	}
	return nil
}

func (set *issuerSet) holds(m *managedIssuer) bool {
	for _, n := range set.all {
		if n == m {
			return true
		}
	}
	return false
}

// fingerprint identifies a jwt[] entry's content.
func fingerprint(j config.JWTAuthenticator) (string, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return "", fmt.Errorf("issuer %s: %w", j.Issuer.URL, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// issuerOptions are the options of every issuer under cfg.
func (s *Service) issuerOptions(cfg *config.Configuration) issuer.Options {
	io := s.opts.Issuer
	io.Logger, io.Observer = s.log, s.metrics
	if s.opts.KeepState {
		io.PersistDir = filepath.Join(cfg.Server.StateDir, stateCacheDir, "issuers")
	}
	return io
}

// stateCacheDir is the subdirectory of server.stateDir the server writes to (KeepState); the
// rest of the state directory (keys, certificates) it only reads.
const stateCacheDir = "cache"

// buildIssuers returns the issuers of cfg: from old, the issuers whose entry did not change
// (kept running, with their keys); new ones for the others. A new issuer that replaces a
// changed entry of the same issuer starts with the keys of the old one (issuer.Inherit).
// Nothing is started or stopped here.
func (s *Service) buildIssuers(cfg *config.Configuration, old *issuerSet) (*issuerSet, error) {
	io := s.issuerOptions(cfg)
	set := &issuerSet{}
	for _, j := range cfg.JWT {
		fp, err := fingerprint(j)
		if err != nil {
			return nil, err
		}
		prev := old.find(j.Issuer.URL)
		if prev != nil && prev.entry == fp {
			set.all = append(set.all, prev)
			continue
		}
		is, err := issuer.New(j, io)
		if err != nil {
			return nil, err
		}
		if prev != nil {
			is.Inherit(prev.is)
		}
		set.all = append(set.all, &managedIssuer{is: is, entry: fp, done: make(chan struct{})})
	}
	return set, nil
}

// start runs m in the background once StartIssuers has been called (else StartIssuers will).
// Callers hold s.mu.
func (s *Service) start(m *managedIssuer) {
	if s.runCtx == nil || m.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.runCtx)
	m.stop = cancel
	s.wg.Go(func() {
		defer close(m.done)
		m.is.Run(ctx)
	})
}

// retire stops m, which a reconfiguration replaced or removed. Once it has stopped, the
// gauges of a removed issuer are dropped: they would keep its last values, and alerts on them.
// Callers hold s.mu.
func (s *Service) retire(m *managedIssuer) {
	if m.stop == nil {
		s.forgetIssuerMetrics(m.is.URL())
		return
	}
	m.stop()
	s.wg.Go(func() {
		<-m.done
		s.forgetIssuerMetrics(m.is.URL())
	})
}

func (s *Service) forgetIssuerMetrics(url string) {
	if s.issuers.Load().find(url) != nil {
		return // still configured (changed, or added again)
	}
	s.metrics.IssuerReadiness.DeleteLabelValues(url)
	s.metrics.JWKSLastSuccess.DeleteLabelValues(url)
}
