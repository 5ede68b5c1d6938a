package issuer

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/statefile"
)

// An issuer keeps its last good discovery document and key set in Options.PersistDir, so that
// the next run can verify tokens before its first live fetch: with exactly the keys the
// issuer published then, for at most statefile.MaxAge, and only until a live fetch replaces
// them (the key set then holds the live keys alone).

// persistKind names the content of an issuer's state file.
const persistKind = "oidc-authenticator/issuer-keys/v1"

// persistRewrite is how often an unchanged key set is written again, to renew the file's age.
const persistRewrite = time.Hour

// persisted is the payload of an issuer's state file: both documents as the issuer served them.
type persisted struct {
	Discovery json.RawMessage `json:"discovery"`
	JWKS      json.RawMessage `json:"jwks"`
}

// savedState is what the issuer wrote last, so that an unchanged key set is not rewritten at
// every fetch.
type savedState struct {
	sum [sha256.Size]byte
	at  time.Time
}

func (i *Issuer) persistPath() string {
	return filepath.Join(i.opts.PersistDir, statefile.Name(i.URL(), ".json"))
}

// persist keeps the key set just fetched (body) with the discovery document that named it
// (keySet.onKeys). A key set fetched before any live discovery of this run is not kept.
func (i *Issuer) persist(jwks []byte) {
	if i.opts.PersistDir == "" {
		return
	}
	i.mu.Lock()
	doc := i.discovery
	i.mu.Unlock()
	if doc == nil {
		return
	}
	payload, err := json.Marshal(persisted{Discovery: doc, JWKS: jwks})
	if err != nil {
		i.opts.Logger.Warn("could not keep the issuer's keys for the next run", "issuer", i.URL(), "err", err)
		return
	}
	now, sum := i.opts.Clock.Now(), sha256.Sum256(payload)
	i.mu.Lock()
	if i.saved.sum == sum && now.Sub(i.saved.at) < persistRewrite {
		i.mu.Unlock()
		return
	}
	prev := i.saved
	i.saved = savedState{sum: sum, at: now}
	i.mu.Unlock()
	if err := statefile.Write(i.persistPath(), persistKind, i.URL(), payload, now); err != nil {
		i.mu.Lock()
		i.saved = prev
		i.mu.Unlock()
		i.opts.Logger.Warn("could not keep the issuer's keys for the next run; after a restart, its tokens wait for a live discovery",
			"issuer", i.URL(), "err", err)
	}
}

// restore makes the issuer ready with the keys a previous run kept, when there are any that
// pass every check: the file's checksum, subject and age (statefile.Read), the document's
// issuer (the configured URL, exactly, as go-oidc requires of a live one), and a usable key
// set. Anything else is ignored with a warning; the live discovery follows either way.
func (i *Issuer) restore(ctx context.Context) {
	if i.opts.PersistDir == "" {
		return
	}
	payload, savedAt, err := statefile.Read(i.persistPath(), persistKind, i.URL(), statefile.MaxAge, i.opts.Clock.Now())
	if errors.Is(err, statefile.ErrNotFound) {
		return
	}
	var (
		keys    []jose.JSONWebKey
		jwksURI string
	)
	if err == nil {
		keys, jwksURI, err = i.checkPersisted(payload)
	}
	if err != nil {
		i.opts.Logger.Warn("ignoring the keys a previous run kept for this issuer; waiting for a live discovery", "issuer", i.URL(), "err", err)
		return
	}
	ks := i.newKeySet(ctx, jwksURI)
	ks.keys.Store(&keys)
	ks.health = keyHealth{keys: len(keys), previousRun: savedAt}
	i.keys = ks
	i.ready.Store(i.newVerifier(ks))
	i.setStatus(true, "")
	i.opts.Logger.Info("issuer ready with the keys of the previous run, until a live discovery replaces them",
		"issuer", i.URL(), "keys", len(keys), "saved_at", stamp(savedAt))
}

// checkPersisted returns the keys and the jwks_uri of a kept state, when its discovery
// document names this issuer.
func (i *Issuer) checkPersisted(payload []byte) ([]jose.JSONWebKey, string, error) {
	var p persisted
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, "", fmt.Errorf("decode the kept state: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(p.Discovery, &doc); err != nil {
		return nil, "", fmt.Errorf("decode the kept discovery document: %w", err)
	}
	if doc.Issuer != i.URL() {
		return nil, "", fmt.Errorf("the kept discovery document names issuer %q, not %q", doc.Issuer, i.URL())
	}
	if doc.JWKSURI == "" {
		return nil, "", errors.New("the kept discovery document has no jwks_uri")
	}
	keys, err := parseKeySet(p.JWKS)
	if err != nil {
		return nil, "", fmt.Errorf("the kept key set: %w", err)
	}
	return keys, doc.JWKSURI, nil
}
