package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// FuzzDecodeReview feeds the TokenReview decoder arbitrary bodies: it must never panic, accept
// only a TokenReview of a supported version with a token, and its answer must never carry
// the token back.
func FuzzDecodeReview(f *testing.F) {
	for _, seed := range []string{
		`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"eyJ.x.y","audiences":["a"]}}`,
		`{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"t"}}`,
		`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":5}}`,
		`{"kind":"TokenReview","spec":{}}`,
		`[]`, `null`, `{`, `"\u0000"`, `{"spec":{"token":"` + strings.Repeat("a", 300) + `"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeReview(body)
		if err != nil {
			if r != nil {
				t.Fatal("a request and an error")
			}
			return
		}
		if r.Kind != "TokenReview" || (r.APIVersion != versionV1 && r.APIVersion != versionV1beta1) || r.Spec.Token == "" {
			t.Fatalf("accepted %+v", r.TypeMeta)
		}
		out, err := json.Marshal(reviewResponse(r.APIVersion, authenticationv1.TokenReviewStatus{}))
		if err != nil {
			t.Fatal(err)
		}
		var answer reviewRequest
		if err := json.Unmarshal(out, &answer); err != nil || answer.Spec.Token != "" {
			t.Fatalf("the answer carries the token, or is not JSON (%v)", err)
		}
	})
}
