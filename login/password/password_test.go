package password

import (
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// fakeIssuer is a password grant endpoint: it accepts one username and password.
type fakeIssuer struct {
	username, password string
	calls              int
}

func (f *fakeIssuer) IssuerURL() string { return "https://issuer.example.com" }

func (f *fakeIssuer) PasswordCredentialsToken(_ context.Context, username, password string) (*oauth2.Token, error) {
	f.calls++
	if username != f.username || password != f.password {
		return nil, &oauth2.RetrieveError{ErrorCode: "invalid_grant", ErrorDescription: "Invalid username or password."}
	}
	return &oauth2.Token{AccessToken: "at-" + username}, nil
}

// fakeAsker answers from a script, or fails like a missing terminal when answers is nil.
type fakeAsker struct {
	answers []string
	asked   []string
}

func (a *fakeAsker) Ask(q string) (string, error)       { return a.next(q) }
func (a *fakeAsker) AskSecret(q string) (string, error) { return a.next("secret " + q) }
func (a *fakeAsker) next(q string) (string, error) {
	a.asked = append(a.asked, q)
	if len(a.answers) == 0 {
		return "", errors.New("no terminal")
	}
	ans := a.answers[0]
	a.answers = a.answers[1:]
	return ans, nil
}

// Rule: the username and password given are sent as they are; missing ones are asked for
// (the password without echo); with nobody to ask, the error says which flag to pass and no
// request is sent; a refusal reads as a wrong username or password and names the user.
func TestFlow(t *testing.T) {
	ctx := context.Background()
	t.Run("given", func(t *testing.T) {
		is := &fakeIssuer{username: "alice", password: "pw"}
		tok, err := Flow{Username: "alice", Password: "pw"}.Login(ctx, is)
		if err != nil || tok.AccessToken != "at-alice" {
			t.Fatalf("%v %v", tok, err)
		}
	})
	t.Run("asked", func(t *testing.T) {
		is := &fakeIssuer{username: "alice", password: "pw"}
		asker := &fakeAsker{answers: []string{"alice", "pw"}}
		if _, err := (Flow{Asker: asker}).Login(ctx, is); err != nil {
			t.Fatal(err)
		}
		if strings.Join(asker.asked, "|") != "Username: |secret Password for alice: " {
			t.Errorf("asked %q", asker.asked)
		}
	})
	t.Run("nobody to ask for the username", func(t *testing.T) {
		is := &fakeIssuer{}
		_, err := Flow{Asker: &fakeAsker{}}.Login(ctx, is)
		if err == nil || !strings.Contains(err.Error(), "pass --username") || is.calls != 0 {
			t.Fatalf("err = %v, %d requests", err, is.calls)
		}
	})
	t.Run("nobody to ask for the password", func(t *testing.T) {
		is := &fakeIssuer{}
		_, err := Flow{Username: "alice"}.Login(ctx, is)
		if err == nil || !strings.Contains(err.Error(), "no password for alice: pass --password, set OIDC_PASSWORD") || is.calls != 0 {
			t.Fatalf("err = %v, %d requests", err, is.calls)
		}
	})
	t.Run("refused", func(t *testing.T) {
		is := &fakeIssuer{username: "alice", password: "pw"}
		_, err := Flow{Username: "alice", Password: "wrong"}.Login(ctx, is)
		want := "wrong username or password for alice (the issuer answered invalid_grant: Invalid username or password.)"
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v, want %q", err, want)
		}
		if strings.Contains(err.Error(), "wrong)") {
			t.Error("the error shows the password")
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		_, err := Flow{Username: "alice", Password: "pw"}.Login(ctx, unreachable{})
		if err == nil || !strings.Contains(err.Error(), "the password grant for alice failed: boom") {
			t.Fatalf("err = %v", err)
		}
	})
}

type unreachable struct{}

func (unreachable) IssuerURL() string { return "https://issuer.example.com" }
func (unreachable) PasswordCredentialsToken(context.Context, string, string) (*oauth2.Token, error) {
	return nil, errors.New("boom")
}
