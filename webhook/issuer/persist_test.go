package issuer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/statefile"
)

// lockedBuffer is a log sink safe for the issuer's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// firstDiscovery is an Observer that closes its channel at the first discovery attempt: by
// then the issuer has restored (or refused) what a previous run kept.
type firstDiscovery struct {
	once sync.Once
	done chan struct{}
}

func newFirstDiscovery() *firstDiscovery { return &firstDiscovery{done: make(chan struct{})} }

func (f *firstDiscovery) DiscoveryFetched(string, error) { f.once.Do(func() { close(f.done) }) }
func (f *firstDiscovery) KeysFetched(string, int, error) {}
func (f *firstDiscovery) IssuerReady(string, bool)       {}

// runUntilLive runs an issuer until its first live discovery and key fetch succeeded, which
// persists them in dir, then stops it.
func runUntilLive(t *testing.T, ti *issuertest.Issuer, dir string) {
	t.Helper()
	is, err := issuer.New(ti.Config(), issuer.Options{PersistDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	is.Run(ctx) // returns once ready
	if !is.Status().Ready {
		t.Fatalf("the first run never became ready: %s", is.Status().Message)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("want one state file in %s, got %v", dir, entries)
	}
}

// restart starts a second run over dir and waits for its first discovery attempt.
func restart(t *testing.T, ti *issuertest.Issuer, dir string, clock *testingclock.FakeClock) (*issuer.Issuer, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	obs := newFirstDiscovery()
	opts := issuer.Options{PersistDir: dir, Observer: obs, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if clock != nil {
		opts.Clock = clock
	}
	is, err := issuer.New(ti.Config(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); is.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-obs.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the second run never tried a discovery")
	}
	return is, logs
}

// A restart judges the first token with the keys of the previous run, without any network
// (the issuer is down), and says where its keys come from.
func TestRestartVerifiesWithPersistedKeysWhileIssuerIsDown(t *testing.T) {
	ti := issuertest.New(t)
	dir := t.TempDir()
	runUntilLive(t, ti, dir)
	tok := ti.Token(t, nil)
	ti.SetDown(true)
	fetches := ti.JWKSFetches()

	is, _ := restart(t, ti, dir, nil)
	st := is.Status()
	if !st.Ready || !strings.Contains(st.Message, "from the previous run") || !strings.Contains(st.Message, "not yet refreshed") {
		t.Fatalf("status after a restart with the issuer down: %+v", st)
	}
	id, err := verify(t, is, tok)
	if err != nil || id.User.Name != "alice@example.com" {
		t.Fatalf("the first token after the restart: %v, %v", id, err)
	}
	if ti.JWKSFetches() != fetches {
		t.Fatal("the restarted issuer fetched keys")
	}
	// A token of a key the previous run did not have is not accepted from the kept state.
	ti.AddKey(t, "key-2", "RS256")
	if _, err := verify(t, is, ti.Sign(t, "key-2", "RS256", ti.Claims(nil))); err == nil {
		t.Fatal("a key that was not kept was accepted")
	}
}

// A kept state is ignored, with a warning, when it fails its checksum, is for another issuer,
// names another issuer in its discovery document, or is older than statefile.MaxAge.
func TestPersistedKeysAreIgnoredUnlessTheyCheckOut(t *testing.T) {
	ti := issuertest.New(t)
	dir := t.TempDir()
	runUntilLive(t, ti, dir)
	tok := ti.Token(t, nil)
	ti.SetDown(true)
	path := filepath.Join(dir, statefile.Name(ti.URL, ".json"))
	kept, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk struct{ Payload string }
	if err := json.Unmarshal(kept, &onDisk); err != nil {
		t.Fatal(err)
	}
	other := issuertest.New(t)

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) *testingclock.FakeClock
		warn  string
	}{
		{"tampered", func(t *testing.T, dir string) *testingclock.FakeClock {
			edited := bytes.Replace(kept, []byte(`\"kid\":\"key-1\"`), []byte(`\"kid\":\"key-9\"`), 1)
			if bytes.Equal(edited, kept) {
				t.Fatal("nothing to tamper with")
			}
			write(t, filepath.Join(dir, statefile.Name(ti.URL, ".json")), edited)
			return nil
		}, "SHA-256"},
		{"another issuer's file", func(t *testing.T, dir string) *testingclock.FakeClock {
			otherDir := t.TempDir()
			runUntilLive(t, other, otherDir)
			b, err := os.ReadFile(filepath.Join(otherDir, statefile.Name(other.URL, ".json")))
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, statefile.Name(ti.URL, ".json")), b)
			return nil
		}, "is for"},
		{"discovery of another issuer", func(t *testing.T, dir string) *testingclock.FakeClock {
			payload := strings.Replace(onDisk.Payload, `"issuer":"`+ti.URL+`"`, `"issuer":"`+other.URL+`"`, 1)
			if payload == onDisk.Payload {
				t.Fatal("no issuer in the kept discovery document")
			}
			if err := statefile.Write(filepath.Join(dir, statefile.Name(ti.URL, ".json")), "oidc-authenticator/issuer-keys/v1", ti.URL, []byte(payload), time.Now()); err != nil {
				t.Fatal(err)
			}
			return nil
		}, "names issuer"},
		{"older than the bound", func(t *testing.T, dir string) *testingclock.FakeClock {
			write(t, filepath.Join(dir, statefile.Name(ti.URL, ".json")), kept)
			return testingclock.NewFakeClock(time.Now().Add(statefile.MaxAge + time.Hour))
		}, "ago"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			clock := tc.setup(t, dir)
			is, logs := restart(t, ti, dir, clock)
			if st := is.Status(); st.Ready {
				t.Fatalf("ready from a state that must be ignored: %+v", st)
			}
			if _, err := verify(t, is, tok); err == nil {
				t.Fatal("a token was accepted with keys that must be ignored")
			}
			if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "ignoring the keys") || !strings.Contains(l, tc.warn) {
				t.Fatalf("no warning naming %q:\n%s", tc.warn, l)
			}
		})
	}
}

// After the first live fetch, the live keys replace the kept ones entirely: a key only in the
// kept set is no longer accepted.
func TestLiveKeysReplacePersistedOnes(t *testing.T) {
	ti := issuertest.New(t)
	ti.AddKey(t, "key-2", "RS256")
	dir := t.TempDir()
	runUntilLive(t, ti, dir)
	withKey2 := ti.Sign(t, "key-2", "RS256", ti.Claims(nil))
	ti.RemoveKeys()
	ti.AddKey(t, "key-3", "RS256")

	clock := testingclock.NewFakeClock(time.Now())
	is, err := issuer.New(ti.Config(), issuer.Options{PersistDir: dir, Clock: clock, KeyRefreshInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	is.Run(ctx) // returns after the live discovery and key fetch
	if st := is.Status(); !st.Ready || strings.Contains(st.Message, "previous run") {
		t.Fatalf("after the live fetch: %+v", st)
	}
	_, err = verify(t, is, withKey2)
	if err == nil {
		t.Fatal("a key only in the kept set was accepted after the live fetch")
	}
	if r := reasonOf(err); r != authn.ReasonUnknownKey {
		t.Fatalf("reason %s (%v), want %s", r, err, authn.ReasonUnknownKey)
	}
	if _, err := verify(t, is, ti.Sign(t, "key-3", "RS256", ti.Claims(nil))); err != nil {
		t.Fatalf("a live key: %v", err)
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
