package authn_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

func TestParseUnverified(t *testing.T) {
	good := token("https://a", 1)
	tests := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"a compact JWS", good, true},
		{"two parts", "a.b", false},
		{"four parts", good + ".x", false},
		{"JSON serialization is not accepted (as in the apiserver)", `{"payload":"x"}`, false},
		{"empty signature", strings.TrimSuffix(good, "c2ln"), false},
		{"header not base64", "!!!." + strings.SplitN(good, ".", 2)[1], false},
		{"payload not JSON", strings.Split(good, ".")[0] + ".bm90IGpzb24.c2ln", false},
		{"no iss", strings.Split(good, ".")[0] + ".e30.c2ln", false},
		{"too long", good + strings.Repeat("A", authn.MaxTokenBytes), false},
		// Only iss is read before go-oidc: it must have the type go-oidc insists on. The other
		// claims (and the signature's encoding) are go-oidc's to judge.
		{"iss a number", withClaims(`{"iss":5}`), false},
		{"exp not a number is left to go-oidc", withClaims(`{"iss":"https://a","exp":"soon"}`), true},
		{"Google's legacy iss is routed to its URL", withClaims(`{"iss":"accounts.google.com"}`), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := authn.ParseUnverified(tc.raw)
			if tc.ok {
				want := "https://a"
				if strings.Contains(tc.name, "Google") {
					want = "https://accounts.google.com"
				}
				if err != nil || u.Issuer != want || u.Algorithm != "RS256" || u.KeyID != "k" {
					t.Fatalf("got %+v, %v", u, err)
				}
				return
			}
			var d *authn.Denial
			if !errors.As(err, &d) || d.Reason != authn.ReasonMalformed || d.Retryable {
				t.Fatalf("want a clean %q denial, got %v", authn.ReasonMalformed, err)
			}
		})
	}
}

// withClaims is a token with the header of token() and the given claim set.
func withClaims(claims string) string {
	parts := strings.Split(token("https://a", 1), ".")
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + "." + parts[2]
}

// FuzzParseUnverified: no input may panic the pre-parser, and anything it accepts has an
// issuer and is within the size bound.
func FuzzParseUnverified(f *testing.F) {
	f.Add(token("https://a", 1))
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4IiwiZXhwIjoiMSJ9.")
	f.Add(`{"payload":"x"}`)
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := authn.ParseUnverified(raw)
		if err != nil {
			return
		}
		if u.Issuer == "" || len(raw) > authn.MaxTokenBytes {
			t.Fatalf("accepted %q as %+v", raw, u)
		}
	})
}
