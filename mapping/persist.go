package mapping

import (
	"encoding/json"
	"errors"
	"slices"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/statefile"
)

// A store keeps the raw data of the last version it accepted in StoreOptions.PersistFile, so
// that the next run can serve it before the source answers (the Kubernetes API may not be
// reachable yet when the webhook starts: kube-apiserver needs the webhook to log anyone in).
// The copy is judged as a new version would be (under the issuers configured now), is used
// only until the source delivers its first snapshot, and is ignored when it fails its checks
// (statefile.Read: checksum, source, at most statefile.MaxAge old). Without a copy, the store
// waits for the source, as it always did.

// persistKind names the content of the mapping's state file.
const persistKind = "oidc-authenticator/mapping/v1"

// persisted is the payload of the mapping's state file.
type persisted struct {
	Version    string            `json:"version"`
	Data       map[string]string `json:"data"`
	BinaryData []string          `json:"binaryData,omitempty"`
	// Parts are the ConfigMaps of a mapping made of several (mapping.configMapSelector).
	Parts []Part `json:"parts,omitempty"`
}

// restore starts the store from the copy a previous run kept, if it checks out. Called by
// NewStore.
func (s *Store) restore() {
	if s.opts.PersistFile == "" {
		return
	}
	payload, savedAt, err := statefile.Read(s.opts.PersistFile, persistKind, s.opts.PersistSubject, statefile.MaxAge, s.now())
	if errors.Is(err, statefile.ErrNotFound) {
		s.log.Info("no copy of the identity mapping from a previous run; tokens are undecided until the source answers", "file", s.opts.PersistFile)
		return
	}
	var p persisted
	if err == nil {
		err = json.Unmarshal(payload, &p)
	}
	var m *Mapping
	if err == nil {
		m, err = ParseSet(snapshotParts(Snapshot{Data: p.Data, BinaryData: p.BinaryData, Parts: p.Parts}), ParseOptions{Issuers: s.opts.Issuers})
	}
	if err != nil {
		s.log.Warn("ignoring the copy of the identity mapping a previous run kept; tokens are undecided until the source answers",
			"file", s.opts.PersistFile, "err", err)
		return
	}
	s.gens++
	s.cur.Store(&storeState{mapping: m, gen: s.gens, version: p.Version, since: s.now(), loaded: true, restored: savedAt})
	s.log.Info("serving the identity mapping of the previous run until the source answers",
		"version", p.Version, "saved_at", stamp(savedAt), "users", len(m.Users), "groups", len(m.Groups))
}

// persist keeps snap, just accepted, for the next run. Callers hold mu.
func (s *Store) persist(snap Snapshot) {
	if s.opts.PersistFile == "" {
		return
	}
	payload, err := encodePersisted(persisted{Version: snap.Version, Data: snap.Data, BinaryData: slices.Clone(snap.BinaryData), Parts: snap.Parts})
	if err == nil {
		err = statefile.Write(s.opts.PersistFile, persistKind, s.opts.PersistSubject, payload, s.now())
	}
	if err != nil {
		s.log.Warn("could not keep the identity mapping for the next run; after a restart, tokens wait for the source",
			"file", s.opts.PersistFile, "err", err)
	}
}
