package mapping

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// storeHarness records what a Store reports.
type storeHarness struct {
	store    *Store
	logs     *bytes.Buffer
	reloads  []string
	rejected []Snapshot
	rejErrs  []error
}

func newHarness(t *testing.T, requireMatch bool) *storeHarness {
	t.Helper()
	h := &storeHarness{logs: &bytes.Buffer{}}
	h.store = NewStore(StoreOptions{
		Issuers:      testIssuers,
		RequireMatch: requireMatch,
		Logger:       slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnReload:     func(r string) { h.reloads = append(h.reloads, r) },
		OnReject: func(s Snapshot, err error) {
			h.rejected = append(h.rejected, s)
			h.rejErrs = append(h.rejErrs, err)
		},
	})
	h.store.now = func() time.Time { return time.Date(2026, 11, 22, 11, 2, 3, 0, time.UTC) }
	return h
}

func (h *storeHarness) username(t *testing.T) string {
	t.Helper()
	u, err := h.store.Map(context.Background(), identity())
	if err != nil {
		t.Fatalf("Map: %v", err)
	}
	return u.Name
}

func (h *storeHarness) status(t *testing.T, wantOK bool, wantParts ...string) {
	t.Helper()
	ok, detail := h.store.Status()
	if ok != wantOK {
		t.Errorf("Status ok = %v, want %v (%s)", ok, wantOK, detail)
	}
	for _, p := range wantParts {
		if !strings.Contains(detail, p) {
			t.Errorf("Status %q does not contain %q", detail, p)
		}
	}
}

const (
	goodV1 = "- subject: alice-sub\n  username: alice-v1\n"
	goodV3 = "- subject: alice-sub\n  username: alice-v3\n  groups: [g]\n"
	badV2  = "- subject: alice-sub\n  email: alice@example.com\n  username: alice-v2\n"
)

// Rule: until its source delivers anything, a store leaves every token undecided (so that
// kube-apiserver caches neither an unmapped user nor a denial) and says so; once the source
// says there is no mapping, it serves with none.
func TestStoreStartsPending(t *testing.T) {
	h := newHarness(t, false)
	_, err := h.store.Map(context.Background(), identity())
	if d := authn.AsDenial(err); d == nil || d.Reason != authn.ReasonMappingPending || !d.Retryable {
		t.Fatalf("before the first snapshot: err = %v, want a retryable mapping_not_loaded", err)
	}
	h.status(t, false, "waiting for the first version")
	if !h.store.Pending() {
		t.Error("Pending() = false before the first snapshot")
	}
	h.store.Update(Snapshot{Deleted: true})
	if got := h.username(t); got != "dex:alice@example.com" {
		t.Errorf("with no mapping at the source: username = %q, want the claim-derived one", got)
	}
	req := newHarness(t, true)
	req.store.Update(Snapshot{Deleted: true})
	if _, err := req.store.Map(context.Background(), identity()); reasonOf(t, err) != authn.ReasonNoMapping {
		t.Errorf("requireMatch with no mapping: err = %v, want no_mapping", err)
	}
}

// Rules: a valid version replaces the one in force; an invalid one is refused, the previous
// stays in force and Status, the log and the hooks say why; the next valid one replaces it.
func TestStoreUpdate(t *testing.T) {
	h := newHarness(t, false)
	h.store.Update(Snapshot{Version: "1", Data: map[string]string{KeyUsers: goodV1}})
	if got := h.username(t); got != "alice-v1" {
		t.Fatalf("after version 1: username = %q", got)
	}
	h.status(t, true, "version 1 in force since 2026-11-22T11:02:03Z (1 users, 0 groups)")

	h.store.Update(Snapshot{Version: "2", Data: map[string]string{KeyUsers: badV2}})
	if got := h.username(t); got != "alice-v1" {
		t.Fatalf("a refused version changed the mapping: username = %q", got)
	}
	h.status(t, true, "version 1 in force", "; version 2 refused at 2026-11-22T11:02:03Z: invalid identity mapping: mapUsers[0].email: must not be set together with subject")
	// /readyz?verbose names where the problems are, never what the entries say.
	if _, d := h.store.PublicStatus(); !strings.Contains(d, "version 2 refused at 2026-11-22T11:02:03Z: invalid identity mapping: 1 problems, at mapUsers[0].email") ||
		strings.Contains(d, "alice") || strings.Contains(d, "must not be set") {
		t.Errorf("PublicStatus %q: want the refused version and the field, without the entry's values or the problem's text", d)
	}
	if len(h.rejected) != 1 || h.rejected[0].Version != "2" || !strings.Contains(h.rejErrs[0].Error(), "mapUsers[0].email") {
		t.Errorf("OnReject calls = %+v %v", h.rejected, h.rejErrs)
	}
	var inv *InvalidError
	if !errors.As(h.rejErrs[0], &inv) {
		t.Errorf("OnReject error %T is not an *InvalidError", h.rejErrs[0])
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "mapUsers[0].email: must not be set together with subject") || !strings.Contains(logs, "in_force=1") {
		t.Errorf("the refusal is not logged as an error naming the problem:\n%s", logs)
	}

	// The same refused version again (a re-list) is not reported twice.
	h.store.Update(Snapshot{Version: "2", Data: map[string]string{KeyUsers: badV2}})
	if len(h.rejected) != 1 {
		t.Errorf("a redelivered refused version was reported again")
	}

	h.store.Update(Snapshot{Version: "3", Data: map[string]string{KeyUsers: goodV3}})
	if got := h.username(t); got != "alice-v3" {
		t.Fatalf("after version 3: username = %q", got)
	}
	h.status(t, true, "version 3 in force")
	if _, d := h.store.Status(); strings.Contains(d, "refused") {
		t.Errorf("Status still reports the refusal after a good version: %s", d)
	}

	// Version 3 again changes nothing.
	h.store.Update(Snapshot{Version: "3", Data: map[string]string{KeyUsers: goodV3}})
	want := []string{ReloadSuccess, ReloadRejected, ReloadSuccess}
	if strings.Join(h.reloads, ",") != strings.Join(want, ",") {
		t.Errorf("reloads = %v, want %v", h.reloads, want)
	}
}

// Rule: a source that cannot be read is a refused version; the mapping in force stays.
func TestStoreSourceError(t *testing.T) {
	h := newHarness(t, false)
	h.store.Update(Snapshot{Version: "1", Data: map[string]string{KeyUsers: goodV1}})
	h.store.Update(Snapshot{Version: "abc", Err: errors.New("not a ConfigMap")})
	if got := h.username(t); got != "alice-v1" {
		t.Fatalf("an unreadable version changed the mapping: username = %q", got)
	}
	h.status(t, true, "version 1 in force", "version abc refused", "not a ConfigMap")
	if len(h.reloads) != 2 || h.reloads[1] != ReloadRejected || len(h.rejected) != 1 {
		t.Errorf("reloads = %v, rejected = %v", h.reloads, h.rejected)
	}
}

// Rule: when the first version is refused, the store serves with no mapping and Status is not
// ok (but callers show it without making the server unready).
func TestStoreFirstVersionRefused(t *testing.T) {
	h := newHarness(t, false)
	h.store.Update(Snapshot{Version: "7", Data: map[string]string{KeyUsers: badV2}})
	if got := h.username(t); got != "dex:alice@example.com" {
		t.Errorf("username = %q", got)
	}
	h.status(t, false, "no valid mapping loaded yet", "version 7 refused")
}

// Rule: deletion revokes every mapping, logged as a warning; a later version is loaded again.
func TestStoreDeleted(t *testing.T) {
	h := newHarness(t, false)
	h.store.Update(Snapshot{Version: "1", Data: map[string]string{KeyUsers: goodV1}})
	h.store.Update(Snapshot{Deleted: true})
	if got := h.username(t); got != "dex:alice@example.com" {
		t.Fatalf("after deletion: username = %q, want the claim-derived one", got)
	}
	h.status(t, true, "the mapping is deleted (since 2026-11-22T11:02:03Z): every mapping is revoked")
	if !strings.Contains(h.logs.String(), "level=WARN") || !strings.Contains(h.logs.String(), "deliberate act") {
		t.Errorf("deletion is not logged as a warning:\n%s", h.logs)
	}
	h.store.Update(Snapshot{Deleted: true})
	if strings.Join(h.reloads, ",") != "success,deleted" {
		t.Errorf("reloads = %v", h.reloads)
	}
	// The same version as before the deletion is loaded again.
	h.store.Update(Snapshot{Version: "1", Data: map[string]string{KeyUsers: goodV1}})
	if got := h.username(t); got != "alice-v1" {
		t.Errorf("after re-creation: username = %q", got)
	}
}

// Rule: with requireMatch, deleting the mapping denies everyone (as aws-auth does).
func TestStoreDeletedRequireMatch(t *testing.T) {
	h := newHarness(t, true)
	h.store.Update(Snapshot{Version: "1", Data: map[string]string{KeyUsers: goodV1}})
	h.store.Update(Snapshot{Deleted: true})
	if _, err := h.store.Map(context.Background(), identity()); reasonOf(t, err) != authn.ReasonNoMapping {
		t.Errorf("err = %v, want no_mapping", err)
	}
}

// Rule: with a trace (oidc-authenticator verify), Map records which version is in force and
// which entries matched.
func TestStoreTracesMatch(t *testing.T) {
	h := newHarness(t, false)
	h.store.Update(Snapshot{Version: "3", Data: map[string]string{KeyUsers: goodV3, KeyGroups: "- group: developers\n  groups: [dev]\n"}})
	var trace authn.Trace
	u, err := h.store.Map(authn.WithTrace(context.Background(), &trace), identity())
	if err != nil || u.Name != "alice-v3" {
		t.Fatalf("Map = %+v, %v", u, err)
	}
	want := `version 3: mapUsers[0] (subject "alice-sub"), mapGroups[0] (group "developers") matched`
	if len(trace.Checks) != 1 || trace.Checks[0].Name != "mapping" || trace.Checks[0].Detail != want {
		t.Errorf("trace = %+v, want one mapping check %q", trace.Checks, want)
	}
}

// Rule: versions are swapped atomically while requests are being mapped.
func TestStoreConcurrentUpdates(t *testing.T) {
	h := newHarness(t, false)
	h.store.Update(Snapshot{Deleted: true})
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				u, err := h.store.Map(ctx, identity())
				if err != nil {
					t.Error(err)
					return
				}
				switch u.Name {
				case "dex:alice@example.com", "alice-v1", "alice-v3":
				default:
					t.Errorf("unexpected username %q", u.Name)
					return
				}
				h.store.Status()
			}
		})
	}
	for i := range 200 {
		data := goodV1
		if i%2 == 1 {
			data = goodV3
		}
		h.store.Update(Snapshot{Version: strings.Repeat("v", i+1), Data: map[string]string{KeyUsers: data}})
	}
	cancel()
	wg.Wait()
}

// recordingObserver records what a Store tells its Observer.
type recordingObserver struct {
	reloads []string
	entries map[string]int
}

func (o *recordingObserver) MappingReloaded(result string, _ time.Duration) {
	o.reloads = append(o.reloads, result)
}

func (o *recordingObserver) MappingEntries(kind string, n int) { o.entries[kind] = n }

// The Observer hears of every reload, and of the size of the mapping in force by kind after
// each change; a refused version leaves the size as it was.
func TestStoreObserver(t *testing.T) {
	o := &recordingObserver{entries: map[string]int{}}
	s := NewStore(StoreOptions{Issuers: testIssuers, Observer: o})
	s.Update(Snapshot{Data: map[string]string{
		KeyUsers:  "- subject: a\n  username: a\n- email: b@example.com\n  username: b\n- expression: \"claims.hd == 'x'\"\n  username: c\n",
		KeyGroups: "- group: g\n  groups: [k]\n- group: h\n  groups: [k]\n- expression: \"claims.hd == 'y'\"\n  groups: [k]\n",
	}, Version: "1"})
	want := map[string]int{"user_subject": 1, "user_email": 1, "user_expression": 1, "group": 2, "group_expression": 1}
	if !maps.Equal(o.entries, want) {
		t.Fatalf("entries %v, want %v", o.entries, want)
	}
	s.Update(Snapshot{Data: map[string]string{KeyUsers: "- nonsense"}, Version: "2"})
	if !maps.Equal(o.entries, want) {
		t.Fatalf("a refused version changed the entries to %v", o.entries)
	}
	s.Update(Snapshot{Deleted: true})
	for _, kind := range EntryKinds {
		if o.entries[kind] != 0 {
			t.Fatalf("after deletion: entries %v, want none", o.entries)
		}
	}
	if want := []string{ReloadSuccess, ReloadRejected, ReloadDeleted}; !slices.Equal(o.reloads, want) {
		t.Fatalf("reloads %v, want %v", o.reloads, want)
	}
}
