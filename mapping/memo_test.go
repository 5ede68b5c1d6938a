package mapping

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// tokenVerifier accepts every token and makes its identity from the token's claims, as the
// issuer does.
type tokenVerifier struct{}

func (tokenVerifier) Verify(_ context.Context, tok *authn.Unverified) (*authn.Identity, error) {
	var claims map[string]any
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.Raw, ".")[1])
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	sub, _ := claims["sub"].(string)
	id := &authn.Identity{Issuer: dex, Subject: sub, Expiry: time.Now().Add(time.Hour),
		User: authn.User{Name: "dex:" + sub, UID: sub}}
	id.SetClaims(claims)
	return id, nil
}

func signedToken(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "k"})
	claims["iss"] = dex
	c, _ := json.Marshal(claims)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + ".c2ln"
}

// ageMapping has n mapGroups entries by an expression the index cannot help with.
func ageMapping(n int, group string) map[string]string {
	var groups strings.Builder
	for i := range n {
		fmt.Fprintf(&groups, "- expression: \"claims.age > %d.0\"\n  groups: [%s-%d]\n", i, group, i)
	}
	return map[string]string{KeyGroups: groups.String()}
}

// A cache hit maps its token without evaluating a single expression while the mapping
// version is the one its result was computed with; a new version, or another token, is
// matched again, and every answer is the one matching gives.
func TestCacheHitReusesTheMappingResult(t *testing.T) {
	h := newHarness(t, false)
	h.store.Update(Snapshot{Data: ageMapping(1000, "old"), Version: "1"})
	auth, err := authn.New(map[string]authn.Verifier{dex: tokenVerifier{}}, h.store, authn.Options{CacheTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	alice := signedToken(map[string]any{"sub": "alice", "age": 500.0})
	bob := signedToken(map[string]any{"sub": "bob", "age": 3.0})
	authenticate := func(tok string, wantCached bool, wantEvaluated int64, wantGroups int, prefix string) {
		t.Helper()
		before := h.store.evaluated.Load()
		res, err := auth.Authenticate(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if res.Cached != wantCached {
			t.Fatalf("cached = %v, want %v", res.Cached, wantCached)
		}
		if got := h.store.evaluated.Load() - before; got != wantEvaluated {
			t.Fatalf("%d expressions evaluated, want %d", got, wantEvaluated)
		}
		if len(res.User.Groups) != wantGroups || wantGroups > 0 && !strings.HasPrefix(res.User.Groups[0], prefix) {
			t.Fatalf("groups %q, want %d of %s", res.User.Groups, wantGroups, prefix)
		}
	}
	authenticate(alice, false, 1000, 500, "old-") // a miss matches
	authenticate(alice, true, 0, 500, "old-")     // a hit reuses it
	authenticate(alice, true, 0, 500, "old-")
	authenticate(bob, false, 1000, 3, "old-") // another identity: its own result
	authenticate(bob, true, 0, 3, "old-")

	// A refused version changes nothing: the memos stay valid.
	h.store.Update(Snapshot{Data: map[string]string{KeyGroups: "- nonsense"}, Version: "2"})
	authenticate(alice, true, 0, 500, "old-")

	// A new version: every memo is stale, each token is matched again once.
	h.store.Update(Snapshot{Data: ageMapping(1000, "new"), Version: "3"})
	authenticate(alice, true, 1000, 500, "new-")
	authenticate(alice, true, 0, 500, "new-")
	authenticate(bob, true, 1000, 3, "new-")

	// The mapping deleted: nothing maps, and nothing stale is served.
	h.store.Update(Snapshot{Deleted: true})
	authenticate(alice, true, 0, 0, "")
}

// A memo answers what Map answers, denials included, and the decision log's Applied names
// the same entries and version.
func TestMemoAnswersAsMap(t *testing.T) {
	h := newHarness(t, true)
	h.store.Update(Snapshot{Data: map[string]string{
		KeyUsers:  "- expression: \"claims.preferred_username == 'alice'\"\n  username: 'user-{{sub}}'\n  groups: [admins]\n",
		KeyGroups: "- expression: \"claims.age > 40.0\"\n  groups: [old]\n- group: developers\n  groups: [devs]\n",
	}, Version: "7"})
	for _, id := range []*authn.Identity{identity(), identity(func(id *authn.Identity) {
		setClaim(id, "preferred_username", "mallory")
		setClaim(id, "age", 3.0)
		id.Groups = nil
	})} {
		wantUser, wantErr := h.store.Map(context.Background(), id)
		var memo authn.Memo
		for i := range 2 {
			var applied Applied
			ctx := WithApplied(context.Background(), &applied)
			u, next, err := h.store.MapMemo(ctx, id, memo)
			if next == nil {
				t.Fatal("no memo for a mapping with expression entries")
			}
			if i == 1 && next != memo {
				t.Fatal("a valid memo was not reused")
			}
			memo = next
			if !reflect.DeepEqual(u, wantUser) || fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("MapMemo (%d) = %+v, %v; Map = %+v, %v", i, u, err, wantUser, wantErr)
			}
			if applied.Version != "7" || !applied.Set {
				t.Fatalf("Applied %+v", applied)
			}
			if fmt.Sprint(applied.Entries()) != fmt.Sprint(func() AppliedEntries {
				var a Applied
				_, _ = h.store.Map(WithApplied(context.Background(), &a), id)
				return a.Entries()
			}()) {
				t.Fatalf("Applied entries %v differ from Map's", applied.Entries())
			}
		}
	}
}

// A mapping without expression entries keeps no memo: it is matched by hash lookups, and a
// memo would only take memory. Neither does a cancelled request's result.
func TestNoMemoWhenNotWorthIt(t *testing.T) {
	h := newHarness(t, false)
	h.store.Update(Snapshot{Data: map[string]string{KeyGroups: "- group: developers\n  groups: [devs]\n"}, Version: "1"})
	if _, memo, err := h.store.MapMemo(context.Background(), identity(), nil); err != nil || memo != nil {
		t.Fatalf("memo %v, %v; want none", memo, err)
	}
	h.store.Update(Snapshot{Data: ageMapping(3, "g"), Version: "2"})
	_, memo, err := h.store.MapMemo(context.Background(), identity(), nil)
	if memo == nil || err != nil {
		t.Fatalf("memo %v, %v", memo, err)
	}
	// Another Store at the same generation does not take this one's memo.
	other := newHarness(t, false)
	other.store.Update(Snapshot{Data: map[string]string{KeyGroups: "- expression: \"claims.age > 0.0\"\n  groups: [other]\n"}, Version: "9"})
	other.store.Update(Snapshot{Data: ageMapping(1, "o"), Version: "10"})
	if u, next, _ := other.store.MapMemo(context.Background(), identity(), memo); next == memo || !slices.Contains(u.Groups, "o-0") {
		t.Fatalf("another Store answered from this one's memo: %+v", u)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, memo, _ := h.store.MapMemo(ctx, identity(), nil); memo != nil {
		t.Fatal("a memo of a cancelled request's result")
	}
}
