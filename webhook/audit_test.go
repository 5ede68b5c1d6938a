package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/mapping"
	"github.com/oidc-authenticator/oidc-authenticator/webhook"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

const auditIssuer = "https://issuer.example.com"

// mappedAuth verifies nothing: the token names a user of the test, whose identity the real
// mapping store maps, as the authenticator does after verification.
type mappedAuth struct{ store *mapping.Store }

func (a mappedAuth) Authenticate(ctx context.Context, raw string) (authn.Result, error) {
	id := &authn.Identity{
		Issuer: auditIssuer, Subject: raw + "-sub", Email: raw + "@example.com", Groups: []string{"developers"},
		User: authn.User{Name: raw + "@example.com", Groups: []string{"oidc:developers"}},
	}
	id.SetClaims(map[string]any{"iss": auditIssuer, "sub": id.Subject, "email": id.Email, "email_verified": true, "groups": []any{"developers"}})
	if raw == "carol" { // in no group of the IdP: matches no entry
		id.Groups, id.User.Groups = nil, nil
		id.SetClaims(map[string]any{"iss": auditIssuer, "sub": id.Subject, "email": id.Email, "email_verified": true})
	}
	res := authn.Result{Identity: id, User: id.User}
	u, err := a.store.Map(ctx, id)
	if err != nil {
		return res, err
	}
	res.User = u
	return res, nil
}

func auditStore(t *testing.T, requireMatch bool) *mapping.Store {
	t.Helper()
	store := mapping.NewStore(mapping.StoreOptions{Issuers: []string{auditIssuer}, RequireMatch: requireMatch})
	store.Update(mapping.Snapshot{Version: "4711", Data: map[string]string{
		mapping.KeyUsers:  "- email: bob@example.com\n  groups: [viewers]\n- email: alice@example.com\n  groups: [cluster-admins]\n",
		mapping.KeyGroups: "- group: testers\n  groups: [qa]\n- group: developers\n  groups: [dev-team]\n",
	}})
	if ok, detail := store.Status(); !ok {
		t.Fatal(detail)
	}
	return store
}

// Rule: an allowed review's log line names the mapping version in force and each entry that
// applied, by key and index, with what it matched on; in JSON, as a list of objects. A denial
// for want of a match names the version it looked in, and no entries.
func TestDecisionLogNamesMappingVersionAndEntries(t *testing.T) {
	t.Run("text", func(t *testing.T) {
		f := serveWith(t, true, mappedAuth{store: auditStore(t, false)})
		f.post(t, f.client, review("v1", "alice"))
		if err := f.shutdown(); err != nil {
			t.Fatal(err)
		}
		want := `username=alice@example.com groups="[oidc:developers cluster-admins dev-team]" cached=false mapping_version=4711 mapping_entries="[mapUsers[1]:email=alice@example.com mapGroups[1]:group=developers]"`
		if !strings.Contains(f.logs.String(), want) {
			t.Fatalf("log lacks\n%s\n%s", want, f.logs.String())
		}
	})
	t.Run("json", func(t *testing.T) {
		var logs strings.Builder
		f := serveLogger(t, mappedAuth{store: auditStore(t, true)}, slog.New(slog.NewJSONHandler(&logs, nil)))
		f.post(t, f.client, review("v1", "alice"))
		f.post(t, f.client, review("v1", "carol"))
		if err := f.shutdown(); err != nil {
			t.Fatal(err)
		}
		lines := decisionLines(t, logs.String())
		if len(lines) != 2 {
			t.Fatalf("%d decision lines:\n%s", len(lines), logs.String())
		}
		allowed, denied := lines[0], lines[1]
		entries := func(line map[string]any) []mapping.AppliedEntry {
			b, _ := json.Marshal(line["mapping_entries"])
			var es []mapping.AppliedEntry
			if err := json.Unmarshal(b, &es); err != nil {
				t.Fatalf("mapping_entries %s: %v", b, err)
			}
			return es
		}
		want := []mapping.AppliedEntry{{Key: "mapUsers", Index: 1, By: "email", Value: "alice@example.com"}, {Key: "mapGroups", Index: 1, By: "group", Value: "developers"}}
		if got := entries(allowed); allowed["result"] != "allowed" || allowed["mapping_version"] != "4711" || !slices.Equal(got, want) {
			t.Errorf("allowed line: %v (entries %+v)", allowed, got)
		}
		if got := entries(denied); denied["result"] != "denied" || denied["reason"] != "no_mapping" || denied["mapping_version"] != "4711" || got == nil || len(got) != 0 {
			t.Errorf("denied line: %v (entries %+v)", denied, got)
		}
	})
}

func decisionLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		if m["msg"] == "TokenReview" {
			out = append(out, m)
		}
	}
	return out
}

// Rule: refusals the log's rate limit leaves out are counted in
// oidc_authenticator_decision_log_suppressed_total as well as in the next line's suppressed=N,
// so the count survives a flood that stops.
func TestSuppressedRefusalsAreCountedInMetrics(t *testing.T) {
	f := serve(t, true)
	const flood = 120
	for range flood {
		f.post(t, f.client, review("v1", "bad"))
	}
	resp, err := f.anon.Get(f.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^oidc_authenticator_decision_log_suppressed_total\{result="denied"\} (\d+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no suppressed counter in the metrics:\n%s", b)
	}
	counted, _ := strconv.Atoi(string(m[1]))
	time.Sleep(300 * time.Millisecond) // the rate allows a line again
	f.post(t, f.client, review("v1", "bad"))
	if err := f.shutdown(); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	lines := strings.Count(logs, "result=denied reason=bad_signature")
	if counted == 0 || lines-1+counted != flood {
		t.Fatalf("%d lines logged of the flood and %d counted as suppressed; want %d in all", lines-1, counted, flood)
	}
	said := 0 // what the lines logged after suppressions say, in all
	for _, m := range regexp.MustCompile(`suppressed=(\d+)`).FindAllStringSubmatch(logs, -1) {
		n, _ := strconv.Atoi(m[1])
		said += n
	}
	if said != counted {
		t.Errorf("the lines say suppressed=%d in all, the counter %d:\n%s", said, counted, logs)
	}
}

// serveLogger is serveWith with the server's logger chosen by the test.
func serveLogger(t *testing.T, auth webhook.Authenticator, log *slog.Logger) *fixture {
	t.Helper()
	return serveWithLogger(t, true, auth, log)
}
