package tokencache

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

var alice = Key{IssuerURL: "https://dex.example.com", ClientID: "kubernetes", Scopes: []string{"openid", "email"}, Username: "alice@example.com"}

func TestSaveLoadAndPermissions(t *testing.T) {
	root := t.TempDir()
	dir := Dir(filepath.Join(root, "cache"))
	if err := os.Mkdir(string(dir), 0o755); err != nil { // a directory someone made too open
		t.Fatal(err)
	}
	if _, err := dir.Load(alice); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing entry: %v, want fs.ErrNotExist", err)
	}
	want := Entry{IDToken: "id", RefreshToken: "refresh"}
	if err := dir.Save(alice, want); err != nil {
		t.Fatal(err)
	}
	if err := dir.Save(alice, want); err != nil { // overwrite
		t.Fatal(err)
	}
	got, err := dir.Load(alice)
	if err != nil || got != want {
		t.Fatalf("Load = %+v, %v; want %+v", got, err, want)
	}
	assertMode(t, string(dir), 0o700)
	assertMode(t, dir.Path(alice), 0o600)
	entries, _ := os.ReadDir(string(dir))
	if len(entries) != 1 {
		t.Errorf("the directory holds %d files after two saves, want only the entry (no temporary files)", len(entries))
	}
	if err := dir.Clean(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(string(dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Clean left the directory: %v", err)
	}
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s has mode %v, want %v", path, st.Mode().Perm(), want)
	}
}

func TestDamagedEntryIsAnError(t *testing.T) {
	dir := Dir(t.TempDir())
	if err := os.WriteFile(dir.Path(alice), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dir.Load(alice); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a damaged file: %v, want a damage error", err)
	}
}

func TestKeys(t *testing.T) {
	reordered := alice
	reordered.Scopes = []string{"email", "openid", "email"}
	if Dir("d").Path(reordered) != Dir("d").Path(alice) {
		t.Error("the order and repetition of scopes must not change the file")
	}
	for name, k := range map[string]Key{
		"issuer":   {IssuerURL: "https://other.example.com", ClientID: alice.ClientID, Scopes: alice.Scopes, Username: alice.Username},
		"client":   {IssuerURL: alice.IssuerURL, ClientID: "other", Scopes: alice.Scopes, Username: alice.Username},
		"scopes":   {IssuerURL: alice.IssuerURL, ClientID: alice.ClientID, Scopes: []string{"openid"}, Username: alice.Username},
		"username": {IssuerURL: alice.IssuerURL, ClientID: alice.ClientID, Scopes: alice.Scopes, Username: "bob@example.com"},
	} {
		if Dir("d").Path(k) == Dir("d").Path(alice) {
			t.Errorf("another %s must get another file", name)
		}
	}
}

// A second Lock of the same entry waits for the first one, and says it waits.
func TestLockWaitsForTheHolder(t *testing.T) {
	dir := Dir(t.TempDir())
	unlock, err := dir.Lock(t.Context(), alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	busy := make(chan struct{})
	acquired := make(chan error)
	go func() {
		unlock2, err := dir.Lock(context.Background(), alice, func() { close(busy) })
		if err == nil {
			unlock2()
		}
		acquired <- err
	}()
	<-busy // the second caller found the lock held
	unlock()
	if err := <-acquired; err != nil {
		t.Fatalf("the second Lock after Unlock: %v", err)
	}

	// Another key is not blocked by this one, and a caller may give up waiting.
	unlock, err = dir.Lock(t.Context(), alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	other := alice
	other.Username = "bob@example.com"
	unlockOther, err := dir.Lock(t.Context(), other, func() { t.Error("another key's lock must be free") })
	if err != nil {
		t.Fatal(err)
	}
	unlockOther()
	ctx, cancel := context.WithCancel(t.Context())
	_, err = dir.Lock(ctx, alice, cancel)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with a cancelled wait: %v, want context.Canceled", err)
	}
}
