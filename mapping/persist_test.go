package mapping

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

func persistingStore(path, subject string, logs *bytes.Buffer) *Store {
	return NewStore(StoreOptions{
		Issuers: testIssuers, PersistFile: path, PersistSubject: subject,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
}

// A store keeps the last version it accepted; the next run serves it before its source
// answers, says so, and leaves it for the source's first answer.
func TestStoreServesThePreviousRunsMappingUntilTheSourceAnswers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache", "mapping.json")
	first := persistingStore(path, "file /m", &bytes.Buffer{})
	first.Update(Snapshot{Data: map[string]string{KeyUsers: goodV1}, Version: "v1"})
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("nothing kept: %v", err)
	}
	first.Update(Snapshot{Data: map[string]string{KeyUsers: badV2}, Version: "v2"}) // refused: not kept

	logs := &bytes.Buffer{}
	next := persistingStore(path, "file /m", logs)
	if next.Pending() {
		t.Fatal("the restarted store waits for its source although a copy was kept")
	}
	u, err := next.Map(context.Background(), identity())
	if err != nil || u.Name != "alice-v1" {
		t.Fatalf("mapped with the kept copy: %+v, %v", u, err)
	}
	if ok, detail := next.Status(); !ok || !strings.Contains(detail, "version v1 from the previous run") {
		t.Fatalf("status: %v %s", ok, detail)
	}
	if !strings.Contains(logs.String(), "serving the identity mapping of the previous run") {
		t.Fatalf("not logged:\n%s", logs.String())
	}
	// The source's first answer replaces it, even when it is the same version.
	next.Update(Snapshot{Data: map[string]string{KeyUsers: goodV1}, Version: "v1"})
	if _, detail := next.Status(); strings.Contains(detail, "previous run") || !strings.Contains(detail, "version v1 in force") {
		t.Fatalf("after the source answered: %s", detail)
	}
	next.Update(Snapshot{Deleted: true})
	if _, err := next.Map(context.Background(), identity()); err != nil {
		t.Fatal(err)
	}
	if u, _ := next.Map(context.Background(), identity()); u.Name == "alice-v1" {
		t.Fatal("a deletion at the source must revoke the mapping")
	}
}

// A copy that fails its checks, or was kept for another source, is ignored with a warning;
// without any copy the store waits for its source, and says so.
func TestStoreIgnoresACopyThatDoesNotCheckOut(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mapping.json")
	persistingStore(path, "file /m", &bytes.Buffer{}).Update(Snapshot{Data: map[string]string{KeyUsers: goodV1}, Version: "v1"})
	kept, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(dir, "tampered.json")
	if err := os.WriteFile(tampered, bytes.Replace(kept, []byte("alice-v1"), []byte("alice-v9"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, subject, log string
	}{
		{"tampered", tampered, "file /m", "SHA-256"},
		{"another source", path, "ConfigMap kube-system/other", "is for"},
		{"none", filepath.Join(dir, "missing.json"), "file /m", "no copy of the identity mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &bytes.Buffer{}
			s := persistingStore(tc.path, tc.subject, logs)
			if !s.Pending() {
				t.Fatal("a store with no usable copy must wait for its source")
			}
			if _, err := s.Map(context.Background(), identity()); err == nil {
				t.Fatal("mapped without a source or a usable copy")
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Fatalf("log lacks %q:\n%s", tc.log, logs.String())
			}
		})
	}
}

// A version refused for naming an issuer not configured is accepted once a reconfiguration
// adds the issuer; a version in force that names an issuer a reconfiguration removed is
// refused, and the mapping in force stays.
func TestStoreSetIssuersJudgesTheNewestVersionAgain(t *testing.T) {
	h := newHarness(t, false)
	other := "https://other.example.com"
	users := "- issuer: " + other + "\n  subject: alice-sub\n  username: other-alice\n- issuer: " + dex + "\n  subject: alice-sub\n  username: alice\n"
	h.store.Update(Snapshot{Data: map[string]string{KeyUsers: users}, Version: "v1"})
	if ok, detail := h.store.Status(); ok || !strings.Contains(detail, "refused") {
		t.Fatalf("a version naming an unknown issuer: %v %s", ok, detail)
	}
	h.store.SetIssuers(append(testIssuers, other))
	if ok, detail := h.store.Status(); !ok || strings.Contains(detail, "refused") || !strings.Contains(detail, "version v1 in force") {
		t.Fatalf("after adding the issuer: %v %s", ok, detail)
	}
	otherID := identity(func(id *authn.Identity) { id.Issuer = other })
	if u, err := h.store.Map(context.Background(), otherID); err != nil || u.Name != "other-alice" {
		t.Fatalf("mapped: %+v %v", u, err)
	}
	h.store.SetIssuers(testIssuers)
	if _, detail := h.store.Status(); !strings.Contains(detail, "version v1 in force") || !strings.Contains(detail, "refused") {
		t.Fatalf("after removing the issuer: %s", detail)
	}
	if h.username(t) != "alice" {
		t.Fatal("the mapping in force must stay")
	}
}
