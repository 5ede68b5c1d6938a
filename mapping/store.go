package mapping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// Reload results passed to StoreOptions.OnReload.
const (
	ReloadSuccess  = "success"
	ReloadRejected = "rejected"
	ReloadDeleted  = "deleted"
)

// StoreOptions configure a Store.
type StoreOptions struct {
	// Issuers are the configured issuer URLs entries may name.
	Issuers []string
	// RequireMatch denies tokens that match no entry.
	RequireMatch bool
	// Logger receives reload logs; nil discards them.
	Logger *slog.Logger
	// OnReload is called after every snapshot with ReloadSuccess, ReloadRejected or
	// ReloadDeleted; may be nil. Snapshots that change nothing are ignored: the version
	// already in force or already refused delivered again, or a second deletion.
	OnReload func(result string)
	// OnReject is called with a refused snapshot and why it was refused; may be nil.
	OnReject func(s Snapshot, err error)
	// PersistFile, when set, is where the store keeps the last version it accepted, and
	// where it starts from until the source answers (persist.go). PersistSubject names the
	// source; a copy kept for another source is ignored.
	PersistFile, PersistSubject string
	// Observer, if set, is told how long each reload took and how large the mapping in force
	// is; metrics implement it.
	Observer Observer
}

// Observer is told about the reloads of a Store.
type Observer interface {
	// MappingReloaded reports a snapshot's result (ReloadSuccess, ReloadRejected or
	// ReloadDeleted) and how long parsing and checking it took.
	MappingReloaded(result string, took time.Duration)
	// MappingEntries reports how many entries of each kind the mapping in force has, for
	// every kind in EntryKinds, after every change.
	MappingEntries(kind string, n int)
}

// EntryKinds are the kinds of entries Observer.MappingEntries counts: mapUsers entries by
// subject, by email and by expression, mapGroups entries by group and by expression.
var EntryKinds = []string{"user_subject", "user_email", "user_expression", "group", "group_expression"}

// entryCounts counts the entries of m by kind, in the order of EntryKinds.
func (m *Mapping) entryCounts() []int {
	if m == nil {
		return make([]int, len(EntryKinds))
	}
	return []int{len(m.bySubject), len(m.byEmail), m.userExpressions.len(), len(m.Groups) - m.groupExpressions.len(), m.groupExpressions.len()}
}

// Store holds the mapping in force and swaps in new versions atomically. It implements
// authn.Mapper. A new version replaces the current one only when it is valid as a whole.
type Store struct {
	opts  StoreOptions
	log   *slog.Logger
	now   func() time.Time
	empty *Mapping

	// mu serialises Update; readers only load cur.
	mu  sync.Mutex
	cur atomic.Pointer[storeState]
	// last is the newest snapshot delivered (under mu), to judge again when the issuers
	// change (SetIssuers).
	last *Snapshot
	// gens numbers the mappings put in force, for storeState.gen; under mu.
	gens uint64
	// evaluated counts the expressions evaluated, for the tests that keep it low.
	evaluated atomic.Int64
}

var _ authn.MemoMapper = (*Store)(nil)

// storeState is what a Store serves from; a new one replaces it on every change.
type storeState struct {
	// mapping is in force; never nil (empty when none is loaded).
	mapping *Mapping
	// gen numbers the mapping in force: it changes with every version accepted and every
	// deletion, and only then, so that a memo of a result under gen is valid while it lasts.
	gen uint64
	// version of the mapping in force; "" before any.
	version string
	// since is when the mapping in force (or its deletion) took effect.
	since time.Time
	// loaded is true once a version was accepted; deleted when the source then vanished.
	loaded, deleted bool
	// refused is the newest version refused since the one in force, if any.
	refused *refusal
	// restored is when a previous run saved the mapping in force, while the source has not
	// answered yet; zero otherwise.
	restored time.Time
}

// pending is true until the source delivered its first snapshot, of whatever kind.
func (st *storeState) pending() bool { return !st.loaded && !st.deleted && st.refused == nil }

// Pending reports whether the source has not delivered its first snapshot yet.
func (s *Store) Pending() bool { return s.cur.Load().pending() }

// refusal records a refused version for Status.
type refusal struct {
	version string
	at      time.Time
	err     error
}

// NewStore returns a Store that waits for its source: until the first snapshot arrives,
// every identity is undecided (authn.ReasonMappingPending), so that kube-apiserver neither
// caches a user without its mapped groups nor a denial. After that, a Store with no valid
// mapping lets identities pass unmapped, or denies them when opts.RequireMatch is set.
func NewStore(opts StoreOptions) *Store {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{opts: opts, log: log, now: time.Now, empty: &Mapping{}}
	s.cur.Store(&storeState{mapping: s.empty})
	s.restore()
	return s
}

// Map maps id with the mapping in force. Errors are *authn.Denial values; the caller logs
// their reason. When ctx carries an authn.Trace, the entries that matched are recorded in it.
func (s *Store) Map(ctx context.Context, id *authn.Identity) (authn.User, error) {
	u, _, err := s.mapIn(ctx, s.cur.Load(), id)
	return u, err
}

// MapMemo maps id as Map does, and returns a memo of the result that the authenticator's
// cache keeps with the token: a cache hit under the same mapping version answers from it
// without matching again, and a new version (or the deletion of the mapping) makes every
// memo stale. Only a mapping with expression entries is worth a memo: the others are matched
// by hash lookups. Nothing is memoized of a result the request's cancellation may have cut
// short, nor of an undecided one.
func (s *Store) MapMemo(ctx context.Context, id *authn.Identity, prev authn.Memo) (authn.User, authn.Memo, error) {
	st := s.cur.Load()
	if p, ok := prev.(*memo); ok && p.store == s && p.gen == st.gen && !st.pending() {
		st.record(ctx, p.match, p.err)
		return p.user, p, p.err
	}
	u, match, err := s.mapIn(ctx, st, id)
	if st.pending() || !st.mapping.hasExpressions() || ctx.Err() != nil {
		return u, nil, err
	}
	var d *authn.Denial
	if err != nil && (!errors.As(err, &d) || d.Retryable) {
		return u, nil, err
	}
	match.evaluated = 0
	return u, &memo{store: s, gen: st.gen, user: u, match: match, err: err}, err
}

// mapIn maps id with the mapping of st.
func (s *Store) mapIn(ctx context.Context, st *storeState, id *authn.Identity) (authn.User, Match, error) {
	if st.pending() {
		return authn.User{}, Match{User: -1}, authn.Record(ctx, "mapping", "", authn.Undecided(authn.ReasonMappingPending,
			fmt.Errorf("the identity mapping has not been read from its source yet")))
	}
	u, match, err := st.mapping.Apply(ctx, id, s.opts.RequireMatch)
	s.evaluated.Add(int64(match.evaluated))
	st.record(ctx, match, err)
	return u, match, err
}

// record fills in the Applied and the Trace ctx carries, if any, with the entries that matched.
func (st *storeState) record(ctx context.Context, match Match, err error) {
	if a := appliedFrom(ctx); a != nil {
		a.Set, a.m, a.match = true, st.mapping, match
		if st.loaded && !st.deleted {
			a.Version = st.version
		}
	}
	if authn.Traced(ctx) {
		authn.Record(ctx, "mapping", st.describe(match), err)
	}
}

// memo is a token's mapping result under the mapping numbered gen by store: a memo of another
// Store (one that replaced it) is never taken for its own.
type memo struct {
	store *Store
	gen   uint64
	user  authn.User
	match Match
	err   error
}

// Bytes estimates what the memo holds beyond the cached identity, counting every string of
// the user as its own (some are the mapping's or the cached identity's): the struct, the
// user, the match.
func (m *memo) Bytes() int64 {
	n := 200 + len(m.user.Name) + len(m.user.UID) + 8*len(m.match.Groups)
	for _, g := range m.user.Groups {
		n += 16 + len(g)
	}
	for k, vs := range m.user.Extra {
		n += 48 + len(k)
		for _, v := range vs {
			n += 16 + len(v)
		}
	}
	for _, e := range m.match.Errors {
		n += 16 + len(e)
	}
	if m.err != nil {
		n += 64 + len(m.err.Error())
	}
	return int64(n)
}

// Update applies a snapshot from a source. A valid version replaces the mapping in force;
// an invalid or unreadable one is refused and the previous mapping stays in force; a
// deleted source revokes every mapping.
func (s *Store) Update(snap Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = &snap
	old := s.cur.Load()
	switch {
	case snap.Deleted:
		s.revoke(old)
	case snap.Err != nil:
		s.refuse(old, snap, fmt.Errorf("the mapping source could not be read: %w", snap.Err), 0)
	default:
		if snap.Version != "" && old.loaded && !old.deleted && old.refused == nil && snap.Version == old.version && old.restored.IsZero() {
			return // redelivered (e.g. a re-list): nothing changed
		}
		start := s.now()
		m, err := ParseSet(snapshotParts(snap), ParseOptions{Issuers: s.opts.Issuers})
		took := s.now().Sub(start)
		if err != nil {
			s.refuse(old, snap, err, took)
			return
		}
		s.accept(old, snap, m, took)
	}
}

// snapshotParts are the ConfigMaps of snap: its Parts, or its own data as the one part.
func snapshotParts(snap Snapshot) []Part {
	if snap.Parts != nil {
		return snap.Parts
	}
	return []Part{{Data: snap.Data, BinaryData: snap.BinaryData}}
}

// observe tells the Observer about a reload, and the size of the mapping now in force.
func (s *Store) observe(result string, took time.Duration, m *Mapping) {
	o := s.opts.Observer
	if o == nil {
		return
	}
	o.MappingReloaded(result, took)
	if result == ReloadRejected {
		return // the mapping in force did not change
	}
	for i, n := range m.entryCounts() {
		o.MappingEntries(EntryKinds[i], n)
	}
}

func (s *Store) accept(old *storeState, snap Snapshot, m *Mapping, took time.Duration) {
	s.gens++
	s.cur.Store(&storeState{mapping: m, gen: s.gens, version: snap.Version, since: s.now(), loaded: true})
	attrs := []any{"version", snap.Version, "users", len(m.Users), "groups", len(m.Groups)}
	if m.Empty() && !old.mapping.Empty() {
		s.log.Warn("identity mapping loaded; it is empty, so every mapping is revoked", attrs...)
	} else {
		s.log.Info("identity mapping loaded", attrs...)
	}
	s.persist(snap)
	s.reloaded(ReloadSuccess, took, m)
}

func (s *Store) refuse(old *storeState, snap Snapshot, err error, took time.Duration) {
	if old.refused != nil && snap.Version != "" && old.refused.version == snap.Version {
		return // the same refused version again: already logged and reported
	}
	next := *old
	next.refused = &refusal{version: snap.Version, at: s.now(), err: err}
	s.cur.Store(&next)
	inForce := "none"
	if old.loaded && !old.deleted {
		inForce = old.version
	}
	s.log.Error("identity mapping version refused; the previous mapping stays in force",
		"version", snap.Version, "in_force", inForce, "err", err)
	s.reloaded(ReloadRejected, took, nil)
	if s.opts.OnReject != nil {
		s.opts.OnReject(snap, err)
	}
}

func (s *Store) revoke(old *storeState) {
	if old.deleted {
		return // already gone
	}
	s.gens++
	s.cur.Store(&storeState{mapping: s.empty, gen: s.gens, since: s.now(), deleted: true, loaded: old.loaded})
	if old.loaded {
		s.log.Warn("identity mapping deleted: every mapping is revoked; deleting it is treated as a deliberate act",
			"version", old.version, "require_match", s.opts.RequireMatch)
	} else {
		s.log.Warn("no identity mapping exists at the source; serving with none", "require_match", s.opts.RequireMatch)
	}
	s.reloaded(ReloadDeleted, 0, nil)
}

// reloaded reports a reload: its result, how long parsing and checking took, and the mapping
// now in force (nil: none, or unchanged when the result is ReloadRejected).
func (s *Store) reloaded(result string, took time.Duration, m *Mapping) {
	if s.opts.OnReload != nil {
		s.opts.OnReload(result)
	}
	s.observe(result, took, m)
}

// Status describes the mapping in force, and the newest refused version if any, for
// /readyz?verbose. ok is false while the source has delivered nothing yet (see Pending), and
// when it delivered nothing valid: then the server serves with no mapping and says so here.
func (s *Store) Status() (ok bool, detail string) { return s.status(false) }

// PublicStatus is Status for readers who may not see the mapping's entries
// (/readyz?verbose): a refused version's reason names the fields with problems, not what
// they say, since a problem may quote an entry's values (the log has the whole text).
func (s *Store) PublicStatus() (ok bool, detail string) { return s.status(true) }

func (s *Store) status(public bool) (ok bool, detail string) {
	st := s.cur.Load()
	var b []byte
	ok = true
	switch {
	case st.deleted:
		b = fmt.Appendf(b, "the mapping is deleted (since %s): every mapping is revoked", stamp(st.since))
	case st.loaded && !st.restored.IsZero():
		b = fmt.Appendf(b, "version %s from the previous run (saved at %s), served until the source answers (%d users, %d groups)",
			st.version, stamp(st.restored), len(st.mapping.Users), len(st.mapping.Groups))
	case st.loaded:
		b = fmt.Appendf(b, "version %s in force since %s (%d users, %d groups)", st.version, stamp(st.since), len(st.mapping.Users), len(st.mapping.Groups))
	case st.refused != nil:
		ok = false
		b = append(b, "no valid mapping loaded yet: serving with none"...)
	default:
		ok = false
		b = append(b, "waiting for the first version from the source: tokens are undecided until then"...)
	}
	if r := st.refused; r != nil {
		v := r.version
		if v == "" {
			v = "(unknown)"
		}
		reason := r.err.Error()
		if public {
			reason = publicReason(r.err)
		}
		b = fmt.Appendf(b, "; version %s refused at %s: %s", v, stamp(r.at), reason)
	}
	return ok, string(b)
}

// publicReason says why a version was refused without what its entries hold: for an invalid
// mapping, where its problems are; for a source that could not be read, the error with every
// quoted value left out.
func publicReason(err error) string {
	var inv *InvalidError
	if !errors.As(err, &inv) {
		return quotedValue.ReplaceAllString(err.Error(), `"…"`)
	}
	where := make([]string, len(inv.Problems))
	for i, p := range inv.Problems {
		where[i] = p.Field
		if p.ConfigMap != "" {
			where[i] = "ConfigMap " + p.ConfigMap + ": " + p.Field
		}
	}
	return fmt.Sprintf("invalid identity mapping: %d problems, at %s (the log says what each is)", len(inv.Problems), strings.Join(where, ", "))
}

// quotedValue is a quoted value in an error's text.
var quotedValue = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// describe says which mapping version is in force and which of its entries matched.
func (st *storeState) describe(match Match) string {
	switch {
	case st.deleted:
		return "the mapping is deleted: nothing to match"
	case !st.loaded:
		return "no mapping loaded: nothing to match"
	}
	return fmt.Sprintf("version %s: %s", st.version, st.mapping.DescribeMatch(match))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
