package dex

import (
	"encoding/json"
	"errors"
	"net/url"
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

// Requests counts what Dex's telemetry counts: one password grant is one /token request.
func TestRequestsCountsTokenEndpointHits(t *testing.T) {
	s := StartForTest(t, Options{})
	before, err := s.Requests(t.Context(), "/token")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PasswordGrant(t.Context(), "alice@example.com", "alice-password"); err != nil {
		t.Fatal(err)
	}
	after, err := s.Requests(t.Context(), "/token")
	if err != nil {
		t.Fatal(err)
	}
	if after != before+1 {
		t.Errorf("/token requests went from %d to %d, want one more", before, after)
	}
	all, err := s.AllRequests(t.Context())
	if err != nil || all < after {
		t.Errorf("AllRequests = %d, %v; want at least the %d /token requests", all, err, after)
	}
}

// GrantTypes restricts what Dex offers, in its discovery document and at its token endpoint.
func TestGrantTypesRestrictDex(t *testing.T) {
	s := StartForTest(t, Options{GrantTypes: []string{"authorization_code", "refresh_token"}})
	_, err := s.PasswordGrant(t.Context(), "alice@example.com", "alice-password")
	var grantErr *GrantError
	if !errors.As(err, &grantErr) || grantErr.Code != "unsupported_grant_type" {
		t.Fatalf("password grant: %v, want unsupported_grant_type", err)
	}
}

// LogIn approves a device authorization of a public client as a person would in a browser.
func TestLogInApprovesDeviceCode(t *testing.T) {
	public := Client{ID: "cli", Public: true}
	s := StartForTest(t, Options{ExtraClients: []Client{public}})
	ctx := t.Context()
	var auth struct {
		DeviceCode string `json:"device_code"`
		Complete   string `json:"verification_uri_complete"`
	}
	post := func(path string, form url.Values, into any) int {
		t.Helper()
		resp, err := s.HTTPClient().PostForm(s.IssuerURL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if into != nil {
			if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode
	}
	post("/device/code", url.Values{"client_id": {public.ID}, "scope": {"openid email"}}, &auth)
	if _, err := s.LogIn(ctx, auth.Complete, "alice@example.com", "wrong"); err == nil || !strings.Contains(err.Error(), "Invalid") {
		t.Fatalf("a wrong password must show Dex's error box, got %v", err)
	}
	page, err := s.LogIn(ctx, auth.Complete, "alice@example.com", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, "Login Successful") {
		t.Errorf("final page lacks Dex's success message:\n%s", page)
	}
	var tokens Tokens
	code := post("/token", url.Values{"client_id": {public.ID}, "grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {auth.DeviceCode}}, &tokens)
	if code != 200 || mustClaims(t, tokens.IDToken)["email"] != "alice@example.com" {
		t.Fatalf("device token: HTTP %d, tokens %+v", code, tokens)
	}
}
