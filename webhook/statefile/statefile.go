// Package statefile keeps what the server learned in one run (an issuer's discovery document
// and keys, the identity mapping it accepted) in the state directory for the next run: each
// file written atomically (a temporary file renamed over it), and read back only when its
// SHA-256 checks out, it names the subject it is read for, and it is not older than a bound.
//
// The checksum detects a torn, truncated or hand-edited file; it is not a signature. Whoever
// can write the directory can forge a file that passes: keep it writable by the server alone.
package statefile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// MaxAge is how old a file may be and still be used: a copy older than this is what an
// instance saw more than a week ago, and is ignored.
const MaxAge = 7 * 24 * time.Hour

// maxFileBytes bounds what Read reads: an issuer's document and keys, or a ConfigMap's data,
// each at most a few MiB.
const maxFileBytes = 8 << 20

// file is the stored form. The checksum covers every other field, so that none of them can
// change without it failing.
type file struct {
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	SavedAt time.Time `json:"savedAt"`
	SHA256  string    `json:"sha256"`
	Payload string    `json:"payload"`
}

func (f *file) sum() string {
	h := sha256.New()
	for _, s := range []string{f.Kind, f.Subject, f.SavedAt.UTC().Format(time.RFC3339Nano), f.Payload} {
		_, _ = fmt.Fprintf(h, "%d:%s\n", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Name is a file name for subject (an issuer URL): the first 16 bytes of its SHA-256, in hex,
// with ext.
func Name(subject, ext string) string {
	sum := sha256.Sum256([]byte(subject))
	return hex.EncodeToString(sum[:16]) + ext
}

// Write stores payload for subject at path, atomically: a reader sees the previous file or
// this one, never a mix. The directory is created (0700) when missing; the file is 0600.
func Write(path, kind, subject string, payload []byte, now time.Time) error {
	f := file{Kind: kind, Subject: subject, SavedAt: now.UTC(), Payload: string(payload)}
	f.SHA256 = f.sum()
	b, err := json.Marshal(&f)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing left to remove
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ErrNotFound is Read's error when there is no file at path.
var ErrNotFound = errors.New("no file")

// Read returns the payload stored for subject at path and when it was saved. It fails (and the
// caller must ignore the file) when the file is missing (ErrNotFound), unreadable, fails its
// checksum, is of another kind, names another subject, was saved more than maxAge before now,
// or claims to be saved in the future.
func Read(path, kind, subject string, maxAge time.Duration, now time.Time) ([]byte, time.Time, error) {
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, time.Time{}, ErrNotFound
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxFileBytes+1))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxFileBytes {
		return nil, time.Time{}, fmt.Errorf("%s is larger than %d bytes", path, maxFileBytes)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, time.Time{}, fmt.Errorf("%s is not a state file: %w", path, err)
	}
	switch {
	case f.SHA256 != f.sum():
		return nil, time.Time{}, fmt.Errorf("%s fails its SHA-256 check (torn or edited)", path)
	case f.Kind != kind:
		return nil, time.Time{}, fmt.Errorf("%s holds %q, not %q", path, f.Kind, kind)
	case f.Subject != subject:
		return nil, time.Time{}, fmt.Errorf("%s is for %q, not %q", path, f.Subject, subject)
	case f.SavedAt.After(now.Add(time.Minute)):
		return nil, time.Time{}, fmt.Errorf("%s was saved at %s, in the future", path, f.SavedAt.Format(time.RFC3339))
	case now.Sub(f.SavedAt) > maxAge:
		return nil, time.Time{}, fmt.Errorf("%s was saved at %s, more than %s ago", path, f.SavedAt.Format(time.RFC3339), maxAge)
	}
	return []byte(f.Payload), f.SavedAt, nil
}
