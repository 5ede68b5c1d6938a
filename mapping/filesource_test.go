package mapping

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// runSource runs src until the test ends and returns the channel of its snapshots.
func runSource(t *testing.T, src Source) <-chan Snapshot {
	t.Helper()
	ch := make(chan Snapshot, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(s Snapshot) { ch <- s }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return ch
}

// next waits for the next snapshot.
func next(t *testing.T, ch <-chan Snapshot, within time.Duration) Snapshot {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(within):
		t.Fatalf("no snapshot within %s", within)
		return Snapshot{}
	}
}

// quiet checks that no snapshot arrives for a while.
func quiet(t *testing.T, ch <-chan Snapshot, d time.Duration) {
	t.Helper()
	select {
	case s := <-ch:
		t.Fatalf("unexpected snapshot %+v", s)
	case <-time.After(d):
	}
}

// writeFile replaces path atomically (write, then rename), so that a poll never sees the
// file half-written.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp") // dot files are skipped in mounted directories
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

const fastPoll = 20 * time.Millisecond

// Rule: an edit of a manifest file takes effect within 2 s with the default poll interval.
func TestFileSourceManifestEdit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "oidc-auth.yaml")
	writeFile(t, path, manifest)
	h := newHarness(t, false)
	src := &FileSource{Path: path}
	if src.String() != "file "+path {
		t.Errorf("String() = %q", src.String())
	}
	ch := runSource(t, src)
	first := next(t, ch, 2*time.Second)
	if first.Err != nil || first.Deleted || len(first.Version) != 12 || !strings.Contains(first.Data[KeyUsers], "alice@example.com") {
		t.Fatalf("first snapshot = %+v", first)
	}
	h.store.Update(first)
	if got := h.username(t); got != "alice" {
		t.Fatalf("username = %q", got)
	}

	edited := strings.Replace(manifest, "username: alice", "username: alice-edited", 1)
	writeFile(t, path, edited)
	start := time.Now()
	s := next(t, ch, 2*time.Second)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the edit took %s to be seen", took)
	}
	if s.Version == first.Version || s.Err != nil {
		t.Fatalf("snapshot after the edit = %+v", s)
	}
	h.store.Update(s)
	if got := h.username(t); got != "alice-edited" {
		t.Errorf("after the edit: username = %q", got)
	}
}

// Rule: only content changes send a snapshot; rewriting the same bytes does not.
func TestFileSourceUnchangedContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.yaml")
	writeFile(t, path, manifest)
	ch := runSource(t, &FileSource{Path: path, PollInterval: fastPoll})
	next(t, ch, time.Second)
	writeFile(t, path, manifest)
	quiet(t, ch, 10*fastPoll)
}

// mountDir lays out a directory the way kubelet mounts a ConfigMap.
type mountDir struct {
	t   *testing.T
	dir string
}

// publish writes a new version in a timestamped directory and swaps ..data to it atomically.
func (m mountDir) publish(version string, files map[string]string) {
	t := m.t
	t.Helper()
	ts := "..2026_11_22_" + version
	if err := os.Mkdir(filepath.Join(m.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		writeFile(t, filepath.Join(m.dir, ts, name), content)
	}
	old, _ := os.Readlink(filepath.Join(m.dir, "..data"))
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(m.dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(m.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// Rule: a ConfigMap mounted as a volume is read through ..data, dot-files are skipped, and
// kubelet's atomic swap of ..data is picked up.
func TestFileSourceMountedDirectory(t *testing.T) {
	m := mountDir{t: t, dir: t.TempDir()}
	m.publish("a", map[string]string{KeyUsers: goodV1, KeyGroups: "- group: developers\n  groups: [dev]\n"})
	h := newHarness(t, false)
	ch := runSource(t, &FileSource{Path: m.dir, PollInterval: fastPoll})
	s := next(t, ch, time.Second)
	if s.Err != nil || s.Deleted || len(s.Data) != 2 || len(s.Version) != 12 {
		t.Fatalf("first snapshot = %+v (only mapUsers and mapGroups are expected, no dot-files)", s)
	}
	h.store.Update(s)
	if got := h.username(t); got != "alice-v1" {
		t.Fatalf("username = %q", got)
	}

	m.publish("b", map[string]string{KeyUsers: goodV3, KeyGroups: "- group: developers\n  groups: [dev]\n"})
	s2 := next(t, ch, time.Second)
	if s2.Err != nil || s2.Version == s.Version {
		t.Fatalf("snapshot after the swap = %+v", s2)
	}
	h.store.Update(s2)
	if got := h.username(t); got != "alice-v3" {
		t.Errorf("after the swap: username = %q", got)
	}
	quiet(t, ch, 10*fastPoll)
}

// Rule: a plain directory (no ..data) with the files works too; a stray subdirectory is an
// error snapshot.
func TestFileSourcePlainDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, KeyUsers), goodV1)
	writeFile(t, filepath.Join(dir, ".hidden"), "ignored")
	ch := runSource(t, &FileSource{Path: dir, PollInterval: fastPoll})
	s := next(t, ch, time.Second)
	if s.Err != nil || len(s.Data) != 1 || s.Data[KeyUsers] != goodV1 {
		t.Fatalf("snapshot = %+v", s)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	s = next(t, ch, time.Second)
	if s.Err == nil || !strings.Contains(s.Err.Error(), "holds a directory sub") {
		t.Fatalf("snapshot = %+v", s)
	}
}

// Rule: a missing path is sent as Deleted, at start and once per disappearance; it is read
// again when it comes back.
func TestFileSourceDeletion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.yaml")
	ch := runSource(t, &FileSource{Path: path, PollInterval: fastPoll})
	if s := next(t, ch, time.Second); !s.Deleted {
		t.Fatalf("missing at start: snapshot = %+v, want Deleted", s)
	}
	writeFile(t, path, manifest)
	if s := next(t, ch, time.Second); s.Deleted || s.Err != nil || s.Data == nil {
		t.Fatalf("after creation: snapshot = %+v", s)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if s := next(t, ch, time.Second); !s.Deleted {
		t.Fatalf("after removal: snapshot = %+v, want Deleted", s)
	}
	quiet(t, ch, 10*fastPoll)
}

// Rule: the removal of a mounted directory is sent as Deleted.
func TestFileSourceDirectoryDeletion(t *testing.T) {
	m := mountDir{t: t, dir: filepath.Join(t.TempDir(), "mapping")}
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m.publish("a", map[string]string{KeyUsers: goodV1})
	ch := runSource(t, &FileSource{Path: m.dir, PollInterval: fastPoll})
	next(t, ch, time.Second)
	if err := os.RemoveAll(m.dir); err != nil {
		t.Fatal(err)
	}
	if s := next(t, ch, time.Second); !s.Deleted {
		t.Fatalf("snapshot = %+v, want Deleted", s)
	}
}

// Rule: a file that is not a ConfigMap manifest is sent once as a snapshot with Err, and
// the store refuses it and keeps the mapping in force.
func TestFileSourceGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.yaml")
	writeFile(t, path, manifest)
	h := newHarness(t, false)
	ch := runSource(t, &FileSource{Path: path, PollInterval: fastPoll})
	h.store.Update(next(t, ch, time.Second))

	writeFile(t, path, "\x00\x01 this: is: not yaml [")
	s := next(t, ch, time.Second)
	if s.Err == nil || s.Deleted || len(s.Version) != 12 || !strings.Contains(s.Err.Error(), path) {
		t.Fatalf("snapshot = %+v, want Err naming the file", s)
	}
	h.store.Update(s)
	if got := h.username(t); got != "alice" {
		t.Errorf("a garbage file changed the mapping: username = %q", got)
	}
	h.status(t, true, "refused", "could not be read")
	quiet(t, ch, 10*fastPoll)

	writeFile(t, path, "apiVersion: v1\nkind: Secret\n")
	if s := next(t, ch, time.Second); s.Err == nil || !strings.Contains(s.Err.Error(), "must be a ConfigMap") {
		t.Fatalf("snapshot = %+v", s)
	}
}

// Rule: Run needs a path.
func TestFileSourceNoPath(t *testing.T) {
	if err := (&FileSource{}).Run(context.Background(), func(Snapshot) {}); err == nil {
		t.Fatal("Run without a path succeeded")
	}
}

// Rule: ReadPath reads a manifest file (naming its ConfigMap), a kubelet-mounted directory
// through ..data, and a plain directory; a missing path is an error naming it.
func TestReadPath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "oidc-auth.yaml")
	writeFile(t, file, manifest+"binaryData:\n  x: aGVsbG8=\n")
	in, err := ReadPath(file)
	if err != nil || in.Object.String() != "kube-system/oidc-auth" || len(in.Data) != 2 || len(in.BinaryData) != 1 {
		t.Fatalf("manifest: %+v, %v", in, err)
	}

	m := mountDir{t: t, dir: t.TempDir()}
	m.publish("a", map[string]string{KeyUsers: goodV1})
	m.publish("b", map[string]string{KeyUsers: goodV3})
	in, err = ReadPath(m.dir)
	if err != nil || len(in.Data) != 1 || in.Data[KeyUsers] != goodV3 || in.Object != (Object{}) {
		t.Fatalf("mounted directory: %+v, %v", in, err)
	}

	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := ReadPath(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing path: err = %v", err)
	}
}

// writeOld replaces path with content, as writeFile does, and dates it an hour back, so that
// its stat is trusted.
func writeOld(t *testing.T, path, content string) {
	t.Helper()
	writeFile(t, path, content)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// tickSource runs a FileSource driven by the test's ticks, with the clock at now.
func tickSource(t *testing.T, path string) (*testFileSource, chan time.Time, <-chan Snapshot) {
	t.Helper()
	ticks := make(chan time.Time)
	src := &testFileSource{FileSource: &FileSource{Path: path, ticks: ticks}}
	src.setNow(time.Now())
	src.FileSource.now = func() time.Time { return time.Unix(0, src.clock.Load()) }
	return src, ticks, runSource(t, src.FileSource)
}

// testFileSource is a FileSource with a clock the test sets.
type testFileSource struct {
	*FileSource
	clock atomic.Int64
}

func (s *testFileSource) setNow(t time.Time) { s.clock.Store(t.UnixNano()) }

// polls sends n ticks; each is taken when the poll before it has finished.
func polls(ticks chan<- time.Time, n int) {
	for range n {
		ticks <- time.Time{}
	}
}

// Rule: polls that find the file as it was read cost a stat: it is read again only every
// rehashEvery polls, and not decoded again when its content did not change.
func TestFileSourceIdlePollsReadNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.yaml")
	writeOld(t, path, manifest)
	src, ticks, ch := tickSource(t, path)
	next(t, ch, 5*time.Second)
	polls(ticks, 2*rehashEvery+10) // polls up to 2*rehashEvery+10 are finished
	if got := src.reads.Load(); got != 3 {
		t.Errorf("%d reads in %d polls, want 3: the first and one every %d polls", got, 2*rehashEvery+10, rehashEvery)
	}
	if got := src.decodes.Load(); got != 1 {
		t.Errorf("%d decodes, want 1", got)
	}
	quiet(t, ch, 10*time.Millisecond)
}

// Rule: a file replaced by another of the same size and modification time is read, as is
// one modified too recently for its stat to be trusted; content already seen is not decoded.
func TestFileSourceSeesReplacedAndRecentFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.yaml")
	writeOld(t, path, manifest)
	old, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	src, ticks, ch := tickSource(t, path)
	first := next(t, ch, 5*time.Second)

	// Same size, same modification time, another file (a rename put it there).
	edited := strings.Replace(manifest, "username: alice", "username: alicf", 1)
	writeFile(t, path, edited)
	if err := os.Chtimes(path, old.ModTime(), old.ModTime()); err != nil {
		t.Fatal(err)
	}
	polls(ticks, 1)
	s := next(t, ch, 5*time.Second)
	if s.Version == first.Version || !strings.Contains(s.Data[KeyUsers], "alicf") {
		t.Fatalf("snapshot after the replacement = %+v", s)
	}

	// Modified just now: every poll reads it, none decodes the content it already sent.
	writeFile(t, path, manifest)
	modified := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	if err := os.Chtimes(path, modified, modified); err != nil {
		t.Fatal(err)
	}
	src.setNow(modified.Add(racyWindow / 2))
	polls(ticks, 1)
	next(t, ch, 5*time.Second)
	reads, decodes := src.reads.Load(), src.decodes.Load()
	polls(ticks, 6)
	if got := src.reads.Load() - reads; got < 5 {
		t.Errorf("%d reads in 5 polls of a file modified just now, want 5", got)
	}
	if got := src.decodes.Load(); got != decodes {
		t.Errorf("%d more decodes of unchanged content", got-decodes)
	}
	quiet(t, ch, 10*time.Millisecond)
}
