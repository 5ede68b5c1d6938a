package dex

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestPasswordGrantForAlice(t *testing.T) {
	s := StartForTest(t, Options{})

	tokens, err := s.PasswordGrant(t.Context(), "alice@example.com", "alice-password")
	if err != nil {
		t.Fatalf("password grant for alice: %v", err)
	}
	if tokens.AccessToken == "" || tokens.RefreshToken == "" || tokens.ExpiresIn <= 0 {
		t.Errorf("incomplete tokens: access token set %t, refresh token set %t, expires_in %d",
			tokens.AccessToken != "", tokens.RefreshToken != "", tokens.ExpiresIn)
	}
	claims := mustClaims(t, tokens.IDToken)
	if claims["iss"] != s.IssuerURL {
		t.Errorf("iss = %v, want %q", claims["iss"], s.IssuerURL)
	}
	if claims["aud"] != s.ClientID {
		t.Errorf("aud = %v, want %q", claims["aud"], s.ClientID)
	}
	if claims["email"] != "alice@example.com" {
		t.Errorf("email = %v, want alice@example.com", claims["email"])
	}
	if claims["email_verified"] != true {
		t.Errorf("email_verified = %v, want true", claims["email_verified"])
	}
	if got, want := stringList(claims["groups"]), []string{"developers", "admins"}; !slices.Equal(got, want) {
		t.Errorf("groups = %v, want %v", got, want)
	}
}

func TestPasswordGrantWithWrongPasswordIsRefused(t *testing.T) {
	s := StartForTest(t, Options{})

	_, err := s.PasswordGrant(t.Context(), "alice@example.com", "not-alice-password")
	if err == nil {
		t.Fatal("password grant with a wrong password succeeded, want an error")
	}
	var grantErr *GrantError
	if !errors.As(err, &grantErr) {
		t.Fatalf("error %v is not a *GrantError", err)
	}
	if !strings.Contains(err.Error(), "access_denied") || !strings.Contains(err.Error(), "Invalid username or password") {
		t.Errorf("error %q does not carry Dex's error and description", err)
	}
}

func TestBobsEmailIsNotVerified(t *testing.T) {
	s := StartForTest(t, Options{})

	tokens, err := s.PasswordGrant(t.Context(), "bob@example.com", "bob-password")
	if err != nil {
		t.Fatalf("password grant for bob: %v", err)
	}
	claims := mustClaims(t, tokens.IDToken)
	if claims["email"] != "bob@example.com" {
		t.Errorf("email = %v, want bob@example.com", claims["email"])
	}
	if claims["email_verified"] != false {
		t.Errorf("email_verified = %v, want false", claims["email_verified"])
	}
	if got, want := stringList(claims["groups"]), []string{"developers"}; !slices.Equal(got, want) {
		t.Errorf("groups = %v, want %v", got, want)
	}
}

func TestRefreshGrant(t *testing.T) {
	s := StartForTest(t, Options{})

	first, err := s.PasswordGrant(t.Context(), "alice@example.com", "alice-password")
	if err != nil {
		t.Fatalf("password grant for alice: %v", err)
	}
	second, err := s.RefreshGrant(t.Context(), first.RefreshToken)
	if err != nil {
		t.Fatalf("refresh grant: %v", err)
	}
	if second.IDToken == first.IDToken {
		t.Error("the refresh grant returned the same id_token again")
	}
	claims := mustClaims(t, second.IDToken)
	if claims["iss"] != s.IssuerURL || claims["email"] != "alice@example.com" {
		t.Errorf("refreshed id_token has iss %v and email %v, want %q and alice@example.com",
			claims["iss"], claims["email"], s.IssuerURL)
	}
	if _, err := s.RefreshGrant(t.Context(), first.RefreshToken); err == nil {
		t.Error("reusing a refresh token succeeded, want Dex to refuse it")
	}
}

func TestStopIsIdempotent(t *testing.T) {
	s := StartForTest(t, Options{})
	if err := s.Stop(); err != nil {
		t.Fatalf("first Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := s.PasswordGrant(t.Context(), "alice@example.com", "alice-password"); err == nil {
		t.Error("password grant succeeded after Stop, want an error")
	}
}

// mustClaims decodes the unverified claims of token or fails the test.
func mustClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	claims, err := UnverifiedClaims(token)
	if err != nil {
		t.Fatalf("decoding the id_token: %v", err)
	}
	return claims
}

// stringList converts a decoded JSON array of strings to a []string.
func stringList(v any) []string {
	items, _ := v.([]any)
	out := make([]string, 0, len(items))
	for _, item := range items {
		s, _ := item.(string)
		out = append(out, s)
	}
	return out
}
