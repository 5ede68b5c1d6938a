package mapping

import (
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
	"time"
)

// DefaultPollInterval is how often a FileSource looks at its path when PollInterval is 0.
const DefaultPollInterval = time.Second

// maxFileSize bounds what a FileSource reads from one file; a ConfigMap holds at most 1 MiB.
const maxFileSize = 4 << 20

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
type FileSource struct {
	// Path is the manifest file or the mounted directory.
	Path string
	// PollInterval is how often Path is read; 0 means DefaultPollInterval.
	PollInterval time.Duration
}

// String names the source for logs.
func (f *FileSource) String() string { return "file " + f.Path }

// Run sends the current state of the path, then every change, until ctx ends; it then
// returns nil.
func (f *FileSource) Run(ctx context.Context, update func(Snapshot)) error {
	if f.Path == "" {
		return errors.New("mapping file source: no path is set")
	}
	interval := f.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	last := ""
	for {
		snap, state := f.read()
		if state != last {
			last = state
			update(snap)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// read takes one look at the path. state identifies what was seen, so that Run sends a
// snapshot only when it changes.
func (f *FileSource) read() (snap Snapshot, state string) {
	snap, state = f.readOnce()
	if snap.Err != nil {
		// A read can race with kubelet removing the version it just replaced: look again.
		snap, state = f.readOnce()
	}
	return snap, state
}

func (f *FileSource) readOnce() (Snapshot, string) {
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
	snap, _ := (&FileSource{Path: path}).read()
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
	b, err := io.ReadAll(io.LimitReader(file, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read mapping %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("mapping file %s is larger than %d MiB; a ConfigMap holds at most 1 MiB", path, maxFileSize>>20)
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
