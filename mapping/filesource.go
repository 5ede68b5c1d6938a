package mapping

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often a FileSource looks at its path when PollInterval is 0.
const DefaultPollInterval = time.Second

// maxFileSize bounds what a FileSource reads from one file. A ConfigMap holds at most 1 MiB,
// but a mapping file is not one: 50,000 entries of ~110 bytes take 5.5 MB.
const maxFileSize = 16 << 20

// FileSource delivers the mapping from a file or directory, polled every PollInterval:
//
//   - a ConfigMap manifest file (YAML or JSON, as `kubectl apply` takes it), or
//   - a directory where a ConfigMap is mounted as a volume: one file per key (mapUsers,
//     mapGroups). Names starting with a dot are kubelet's (..data, ..2026_11_22_...) and are
//     skipped; when ..data exists, the files are read through it, so that one snapshot never
//     mixes two versions kubelet swapped in between.
//
// A snapshot is sent only when the content changes; its Version is the first 12 hex digits of
// the content's SHA-256. A path that does not exist (also at start) is sent as Deleted, once
// per disappearance. A path that cannot be read, or a manifest that is not a ConfigMap, is
// sent as a snapshot with Err.
//
// A poll that finds what the last one read costs a stat: the files are read again only when
// their size, modification time or identity (a file replaced by a rename) changed, when they
// were modified less than racyWindow before (a second edit within the file system's time
// granularity could keep both), and every rehashEvery polls whatever the stat says; a file
// read again is decoded only when its content hash differs from the one last seen.
type FileSource struct {
	// Path is the manifest file or the mounted directory.
	Path string
	// PollInterval is how often Path is read; 0 means DefaultPollInterval.
	PollInterval time.Duration

	// ticks, when set, replaces the poll interval's ticker, and now the clock (tests).
	ticks <-chan time.Time
	now   func() time.Time
	// reads and decodes count the polls that read the files and the manifests decoded (tests).
	reads, decodes atomic.Int64
}

const (
	// racyWindow is how recent a modification time must be for a stat not to be trusted.
	racyWindow = 2 * time.Second
	// rehashEvery is how many polls may trust the stat before the files are read anyway.
	rehashEvery = 60
)

// String names the source for logs.
func (f *FileSource) String() string { return "file " + f.Path }

// Run sends the current state of the path, then every change, until ctx ends; it then
// returns nil.
func (f *FileSource) Run(ctx context.Context, update func(Snapshot)) error {
	if f.Path == "" {
		return errors.New("mapping file source: no path is set")
	}
	ticks := f.ticks
	if ticks == nil {
		interval := f.PollInterval
		if interval <= 0 {
			interval = DefaultPollInterval
		}
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		ticks = ticker.C
	}
	var p poller
	for {
		if snap, changed := p.poll(f); changed {
			update(snap)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
	}
}

// poller remembers what the last polls saw.
type poller struct {
	// state identifies what was last sent, so that only changes are.
	state string
	// stamp is the stat of the files when last read, "" when it was not to be trusted.
	stamp string
	// info is the file's stat when last read, to tell a file replaced by another.
	info  fs.FileInfo
	polls int
}

// poll takes one look at the path and returns the snapshot to send, if anything changed.
func (p *poller) poll(f *FileSource) (Snapshot, bool) {
	p.polls++
	stamp, info := f.stamp()
	if stamp != "" && stamp == p.stamp && p.polls%rehashEvery != 0 &&
		(info == nil) == (p.info == nil) && (info == nil || os.SameFile(info, p.info)) {
		return Snapshot{}, false
	}
	f.reads.Add(1)
	snap, state := f.read(p.state)
	p.stamp, p.info = stamp, info
	if state == p.state {
		return Snapshot{}, false
	}
	p.state = state
	return snap, true
}

// stamp describes the files at the path by their stat, "" when it may not tell a change:
// the path cannot be read, or a file was modified within racyWindow. info is the stat of the
// path when it is a file.
func (f *FileSource) stamp() (string, fs.FileInfo) {
	now := time.Now()
	if f.now != nil {
		now = f.now()
	}
	info, err := os.Stat(f.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "deleted", nil
	case err != nil:
		return "", nil
	case !info.IsDir():
		if now.Sub(info.ModTime()) < racyWindow {
			return "", nil
		}
		return fmt.Sprintf("file %d %d", info.Size(), info.ModTime().UnixNano()), info
	}
	dir := f.Path
	b := []byte("dir")
	if target, err := filepath.EvalSymlinks(filepath.Join(dir, "..data")); err == nil {
		dir = target
		b = append(b, target...)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", nil
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil || now.Sub(fi.ModTime()) < racyWindow {
			return "", nil
		}
		b = fmt.Appendf(b, "\x00%s %d %d %v", e.Name(), fi.Size(), fi.ModTime().UnixNano(), fi.IsDir())
	}
	return string(b), nil
}

// read takes one look at the path. state identifies what was seen, so that Run sends a
// snapshot only when it changes; content whose state is last is not decoded again.
func (f *FileSource) read(last string) (snap Snapshot, state string) {
	snap, state = f.readOnce(last)
	if snap.Err != nil {
		// A read can race with kubelet removing the version it just replaced: look again.
		snap, state = f.readOnce(last)
	}
	return snap, state
}

func (f *FileSource) readOnce(last string) (Snapshot, string) {
	info, err := os.Stat(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return Snapshot{Deleted: true}, "deleted"
	}
	if err != nil {
		return failed(fmt.Errorf("read mapping %s: %w", f.Path, err), "")
	}
	if info.IsDir() {
		return f.readDir()
	}
	b, err := readFile(f.Path)
	if err != nil {
		return failed(err, "")
	}
	version := contentVersion(b)
	for _, seen := range []string{"data " + version, "error " + version} {
		if last == seen {
			return Snapshot{}, last // the content already sent: not decoded again
		}
	}
	f.decodes.Add(1)
	in, err := DecodeManifest(b)
	if err != nil {
		return failed(fmt.Errorf("mapping file %s: %w", f.Path, err), version)
	}
	return Snapshot{Data: in.Data, BinaryData: in.BinaryData, Version: version}, "data " + version
}

// readDir reads a mounted ConfigMap: every file whose name does not start with a dot.
func (f *FileSource) readDir() (Snapshot, string) {
	dir := f.Path
	if target, err := filepath.EvalSymlinks(filepath.Join(dir, "..data")); err == nil {
		dir = target
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return failed(fmt.Errorf("read mapping directory %s: %w", f.Path, err), "")
	}
	data := map[string]string{}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil {
			return failed(fmt.Errorf("read mapping directory %s: %w", f.Path, err), "")
		}
		if info.IsDir() {
			return failed(fmt.Errorf("mapping directory %s holds a directory %s; it must hold only the files %s and %s", f.Path, name, KeyUsers, KeyGroups), "")
		}
		b, err := readFile(path)
		if err != nil {
			return failed(err, "")
		}
		data[name] = string(b)
		names = append(names, name)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, name := range names {
		// Length-prefixed, so that no two different directories hash alike.
		for _, part := range []string{name, data[name]} {
			_ = binary.Write(h, binary.BigEndian, uint64(len(part)))
			_, _ = io.WriteString(h, part)
		}
	}
	version := hex.EncodeToString(h.Sum(nil))[:12]
	return Snapshot{Data: data, Version: version}, "data " + version
}

// ReadPath reads what a FileSource would read at path once: a ConfigMap manifest file or a
// mounted ConfigMap directory (one file per key, kubelet's ..data layout included). The
// Input's Object is empty for a directory.
func ReadPath(path string) (Input, error) {
	info, err := os.Stat(path)
	if err != nil {
		return Input{}, fmt.Errorf("read mapping: %w", err)
	}
	if !info.IsDir() {
		b, err := readFile(path)
		if err != nil {
			return Input{}, err
		}
		in, err := DecodeManifest(b)
		if err != nil {
			return in, fmt.Errorf("mapping file %s: %w", path, err)
		}
		return in, nil
	}
	snap, _ := (&FileSource{Path: path}).read("")
	switch {
	case snap.Err != nil:
		return Input{}, snap.Err
	case snap.Deleted:
		return Input{}, fmt.Errorf("read mapping directory %s: %w", path, fs.ErrNotExist)
	}
	return Input{Data: snap.Data}, nil
}

// readFile reads a whole file, refusing one too large to be a ConfigMap.
func readFile(path string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read mapping: %w", err)
	}
	defer file.Close()
	// Read into a buffer the size of the file: growing one from nothing copies a large file
	// over and over.
	var buf bytes.Buffer
	if info, err := file.Stat(); err == nil && info.Size() <= maxFileSize {
		buf.Grow(int(info.Size()) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(file, maxFileSize+1)); err != nil {
		return nil, fmt.Errorf("read mapping %s: %w", path, err)
	}
	b := buf.Bytes()
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("mapping file %s is larger than %d MiB, the most a mapping file may hold", path, maxFileSize>>20)
	}
	return b, nil
}

// contentVersion names content by the first 12 hex digits of its SHA-256.
func contentVersion(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}

// failed is a snapshot for a source that could not be read. Its state changes with the
// content version, or with the error when there is no content, so that every new failure is
// reported once.
func failed(err error, version string) (Snapshot, string) {
	state := "error " + version
	if version == "" {
		state += err.Error()
	}
	return Snapshot{Version: version, Err: err}, state
}
