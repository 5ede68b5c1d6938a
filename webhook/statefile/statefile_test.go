package statefile_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/statefile"
)

func TestRoundTripAndRefusals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", statefile.Name("https://a", ".json"))
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	payload := []byte(`{"keys":[1,2]}`)
	if err := statefile.Write(path, "keys", "https://a", payload, now); err != nil {
		t.Fatal(err)
	}
	got, saved, err := statefile.Read(path, "keys", "https://a", time.Hour, now.Add(time.Minute))
	if err != nil || !bytes.Equal(got, payload) || !saved.Equal(now) {
		t.Fatalf("read back %q saved %s err %v", got, saved, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("the temporary file was left behind: %v", entries)
	}

	for _, tc := range []struct {
		name, kind, subject string
		now                 time.Time
		edit                func(string) string
		want                string
	}{
		{"another subject", "keys", "https://b", now, nil, `is for "https://a"`},
		{"another kind", "mapping", "https://a", now, nil, `not "mapping"`},
		{"too old", "keys", "https://a", now.Add(2 * time.Hour), nil, "more than 1h0m0s ago"},
		{"from the future", "keys", "https://a", now.Add(-time.Hour), nil, "in the future"},
		{"edited payload", "keys", "https://a", now, func(s string) string { return strings.Replace(s, "[1,2]", "[1,3]", 1) }, "SHA-256"},
		{"edited date", "keys", "https://a", now, func(s string) string { return strings.Replace(s, "2026-12-04", "2026-12-05", 1) }, "SHA-256"},
		{"truncated", "keys", "https://a", now, func(s string) string { return s[:len(s)/2] }, "not a state file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := path
			if tc.edit != nil {
				b, _ := os.ReadFile(path)
				p = filepath.Join(dir, "edited")
				if err := os.WriteFile(p, []byte(tc.edit(string(b))), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := statefile.Read(p, tc.kind, tc.subject, time.Hour, tc.now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, _, err := statefile.Read(filepath.Join(dir, "missing"), "keys", "https://a", time.Hour, now); !errors.Is(err, statefile.ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
}
