package devicecode

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// fakeIssuer hands out one device code and answers the poll with tok or err.
type fakeIssuer struct {
	auth     *oauth2.DeviceAuthResponse
	authErr  error
	tok      *oauth2.Token
	pollErr  error
	polledOn *oauth2.DeviceAuthResponse
}

func (f *fakeIssuer) IssuerURL() string { return "https://issuer.example.com" }

func (f *fakeIssuer) DeviceAuth(context.Context) (*oauth2.DeviceAuthResponse, error) {
	return f.auth, f.authErr
}

func (f *fakeIssuer) DeviceAccessToken(ctx context.Context, auth *oauth2.DeviceAuthResponse) (*oauth2.Token, error) {
	f.polledOn = auth
	if f.pollErr == nil && f.tok == nil {
		<-ctx.Done() // the user never logs in
		return nil, ctx.Err()
	}
	return f.tok, f.pollErr
}

func authResponse() *oauth2.DeviceAuthResponse {
	return &oauth2.DeviceAuthResponse{
		DeviceCode:              "dc",
		UserCode:                "WDJB-MJHT",
		VerificationURI:         "https://issuer.example.com/device",
		VerificationURIComplete: "https://issuer.example.com/device?user_code=WDJB-MJHT",
	}
}

// Rule: the user is told where to go and which code to check (the complete URL, and the plain
// one to type the code into), the browser is opened on the complete URL, and the token the
// poll brings is returned for the device code the issuer gave.
func TestFlowLogsIn(t *testing.T) {
	is := &fakeIssuer{auth: authResponse(), tok: &oauth2.Token{AccessToken: "at"}}
	var msgs bytes.Buffer
	var opened []string
	f := Flow{Messages: &msgs, OpenBrowser: func(u string) error { opened = append(opened, u); return errors.New("no browser") }}
	tok, err := f.Login(context.Background(), is)
	if err != nil || tok.AccessToken != "at" {
		t.Fatalf("%v %v", tok, err)
	}
	if is.polledOn != is.auth {
		t.Error("the poll did not use the device code the issuer gave")
	}
	want := "To log in at https://issuer.example.com, open https://issuer.example.com/device?user_code=WDJB-MJHT in a browser and check that it shows the code WDJB-MJHT\n" +
		"  (or open https://issuer.example.com/device and enter the code)\n"
	if msgs.String() != want {
		t.Errorf("messages:\n%s\nwant:\n%s", msgs.String(), want)
	}
	if len(opened) != 1 || opened[0] != is.auth.VerificationURIComplete {
		t.Errorf("opened %q", opened)
	}
}

// Rule: without a complete URL, the plain one is given once; without OpenBrowser nothing is
// opened.
func TestFlowPlainVerificationURI(t *testing.T) {
	auth := authResponse()
	auth.VerificationURIComplete = ""
	is := &fakeIssuer{auth: auth, tok: &oauth2.Token{AccessToken: "at"}}
	var msgs bytes.Buffer
	if _, err := (Flow{Messages: &msgs}).Login(context.Background(), is); err != nil {
		t.Fatal(err)
	}
	if got := msgs.String(); got != "To log in at https://issuer.example.com, open https://issuer.example.com/device in a browser and check that it shows the code WDJB-MJHT\n" {
		t.Errorf("messages: %q", got)
	}
}

// Rule: each way the login can end without a token says what happened, in the user's words.
func TestFlowFailures(t *testing.T) {
	tests := []struct {
		name    string
		is      *fakeIssuer
		timeout time.Duration
		want    string
	}{
		{"device code refused", &fakeIssuer{authErr: &oauth2.RetrieveError{ErrorCode: "unauthorized_client"}}, 0,
			"the issuer refused a device code: the issuer answered unauthorized_client"},
		{"denied in the browser", &fakeIssuer{auth: authResponse(), pollErr: &oauth2.RetrieveError{ErrorCode: "access_denied"}}, 0,
			"the login was denied in the browser (the issuer answered access_denied)"},
		{"code expired", &fakeIssuer{auth: authResponse(), pollErr: context.DeadlineExceeded}, 0,
			"the device code expired before the login was done: run the command again"},
		{"other failure", &fakeIssuer{auth: authResponse(), pollErr: &oauth2.RetrieveError{ErrorCode: "server_error"}}, 0,
			"the device code login failed: the issuer answered server_error"},
		{"user never logs in", &fakeIssuer{auth: authResponse()}, 50 * time.Millisecond,
			"no login in the browser: context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			var msgs bytes.Buffer
			_, err := Flow{Messages: &msgs}.Login(ctx, tt.is)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if tt.is.authErr != nil && strings.Contains(msgs.String(), "open") {
				t.Errorf("instructions printed without a device code: %q", msgs.String())
			}
		})
	}
}
