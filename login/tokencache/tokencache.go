// Package tokencache keeps the tokens of each login in a file of its own, readable by its owner
// only, written atomically, with a lock so that concurrent processes log in once.
package tokencache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gofrs/flock"
)

// lockRetry is how often a process waiting for another one's login checks the lock.
const lockRetry = 100 * time.Millisecond

// Key identifies one login: the same issuer, client, scopes and user share a cache file.
type Key struct {
	IssuerURL string   `json:"issuer"`
	ClientID  string   `json:"client_id"`
	Scopes    []string `json:"scopes"`
	Username  string   `json:"username,omitempty"`
}

// name is the key's file name stem: a hash, so that no part of the key needs escaping.
func (k Key) name() string {
	k.Scopes = slices.Sorted(slices.Values(k.Scopes))
	k.Scopes = slices.Compact(k.Scopes)
	b, _ := json.Marshal(k) // a struct of strings always marshals
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Entry is what is kept for a login.
type Entry struct {
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// Dir is a cache directory.
type Dir string

// Path returns the file that holds the entry for k.
func (d Dir) Path(k Key) string { return filepath.Join(string(d), k.name()+".json") }

// Load returns the entry for k. It returns an error wrapping fs.ErrNotExist when there is none.
func (d Dir) Load(k Key) (Entry, error) {
	b, err := os.ReadFile(d.Path(k))
	if err != nil {
		return Entry{}, fmt.Errorf("cannot read the token cache: %w", err)
	}
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, fmt.Errorf("the token cache file %s is damaged: %w", d.Path(k), err)
	}
	return e, nil
}

// Save writes the entry for k: to a temporary file in the directory, then renamed over the
// old one, so that a reader sees the old entry or the new one, never half of one. The
// directory is made private (0700) and the file is 0600.
func (d Dir) Save(k Key, e Entry) error {
	if err := d.ensure(); err != nil {
		return err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("cannot encode the token cache entry: %w", err)
	}
	tmp, err := os.CreateTemp(string(d), ".tmp-*") // created 0600
	if err != nil {
		return fmt.Errorf("cannot write the token cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write the token cache: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write the token cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write the token cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), d.Path(k)); err != nil {
		return fmt.Errorf("cannot write the token cache: %w", err)
	}
	return nil
}

// Lock takes the lock of k's entry, waiting for ctx while another process holds it. busy, if
// not nil, is called once when the lock is held by another process, before waiting. The
// returned function releases the lock.
func (d Dir) Lock(ctx context.Context, k Key, busy func()) (unlock func(), err error) {
	if err := d.ensure(); err != nil {
		return nil, err
	}
	l := flock.New(filepath.Join(string(d), k.name()+".lock"))
	locked, err := l.TryLock()
	if err == nil && !locked {
		if busy != nil {
			busy()
		}
		locked, err = l.TryLockContext(ctx, lockRetry)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("gave up waiting for another process logging in with the same settings: %w", ctx.Err())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot lock the token cache: %w", err)
	}
	if !locked {
		return nil, errors.New("cannot lock the token cache")
	}
	return func() { _ = l.Unlock() }, nil
}

// Clean removes the cache directory and everything in it.
func (d Dir) Clean() error {
	if err := os.RemoveAll(string(d)); err != nil {
		return fmt.Errorf("cannot remove the token cache: %w", err)
	}
	return nil
}

// ensure creates the directory if needed and makes it private.
func (d Dir) ensure() error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("cannot create the token cache directory: %w", err)
	}
	if err := os.Chmod(string(d), 0o700); err != nil {
		return fmt.Errorf("cannot make the token cache directory private: %w", err)
	}
	return nil
}
