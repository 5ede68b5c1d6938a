package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/oidc-authenticator/oidc-authenticator/login"
	"github.com/oidc-authenticator/oidc-authenticator/login/browser"
	"github.com/oidc-authenticator/oidc-authenticator/login/prompt"
	"github.com/oidc-authenticator/oidc-authenticator/login/provider"
)

const (
	defaultScopes   = "openid email profile groups offline_access"
	defaultCacheDir = "~/.kube/cache/oidc-authenticator"
)

// loginFlags are the flags that say how to log in. `token` uses them; `kubeconfig` takes the
// same flags and writes those given into the exec stanza that runs `token`.
type loginFlags struct {
	set                                               *pflag.FlagSet
	issuerURL, clientID, clientSecret, scopes, caFile string
	grantType, username, listenAddress, cacheDir      string
	skipBrowser                                       bool
	timeout                                           time.Duration
}

// pathFlags hold file names, made absolute when written into a kubeconfig.
var pathFlags = []string{"certificate-authority", "token-cache-dir"}

func newLoginFlags() *loginFlags {
	f := &loginFlags{set: pflag.NewFlagSet("login", pflag.ContinueOnError)}
	fs := f.set
	fs.StringVar(&f.issuerURL, "issuer-url", "", "the OIDC issuer URL, exactly as in the id_tokens' iss (required)")
	fs.StringVar(&f.clientID, "client-id", "", "the OAuth 2.0 client ID, the id_tokens' aud (required)")
	fs.StringVar(&f.clientSecret, "client-secret", "", "the client secret; empty for a public client")
	fs.StringVar(&f.scopes, "scopes", defaultScopes, "scopes to request, separated by spaces or commas (openid is always added)")
	fs.StringVar(&f.caFile, "certificate-authority", "", "PEM file of CA certificates to trust for the issuer, besides the system's")
	fs.StringVar(&f.grantType, "grant-type", login.GrantAuto, "how to log in: "+strings.Join(login.GrantTypes, ", ")+
		" (auto: password with --username, else authcode when a browser can be opened, else device-code)")
	fs.StringVar(&f.username, "username", "", "username for the password grant (asked on a terminal when absent)")
	fs.StringVar(&f.listenAddress, "listen-address", "127.0.0.1:8000", "host:port of the loopback redirect for authcode; the redirect URI http://HOST:PORT/callback must be registered at the issuer (port 0: any free port, for issuers that allow it)")
	fs.StringVar(&f.cacheDir, "token-cache-dir", defaultCacheDir, "directory of the token cache")
	fs.BoolVar(&f.skipBrowser, "skip-open-browser", false, "print the login URL without opening a browser")
	fs.DurationVar(&f.timeout, "timeout", 3*time.Minute, "give up a login that takes longer (waiting for a browser or another process included)")
	return f
}

// options returns the login options; stdin (when a terminal) and stderr are used to ask for a
// missing username or password and to tell the user what to do.
func (f *loginFlags) options(stdin io.Reader, stderr io.Writer) (login.Options, error) {
	cacheDir, err := expandHome(f.cacheDir)
	if err != nil {
		return login.Options{}, err
	}
	var browserCommand []string
	if !f.skipBrowser {
		browserCommand = browser.Command()
	}
	in, _ := stdin.(*os.File)
	return login.Options{
		Provider: provider.Config{
			IssuerURL:    f.issuerURL,
			ClientID:     f.clientID,
			ClientSecret: f.clientSecret,
			Scopes:       parseScopes(f.scopes),
			CAFile:       f.caFile,
		},
		GrantType:     f.grantType,
		Username:      f.username,
		Asker:         prompt.Terminal{In: in, Out: stderr},
		ListenAddress: f.listenAddress,
		Browser:       browserCommand,
		CacheDir:      cacheDir,
		Messages:      stderr,
	}, nil
}

// args returns the login flags given on the command line as arguments of
// `oidc-authenticator token`, with file names made absolute.
func (f *loginFlags) args() ([]string, error) {
	var args []string
	var err error
	f.set.VisitAll(func(fl *pflag.Flag) {
		if !fl.Changed || err != nil {
			return
		}
		v := fl.Value.String()
		if slices.Contains(pathFlags, fl.Name) && v != "" {
			if v, err = expandHome(v); err == nil {
				v, err = filepath.Abs(v)
			}
		}
		args = append(args, "--"+fl.Name+"="+v)
	})
	return args, err
}

// parseScopes splits scopes at spaces and commas and makes sure openid is there.
func parseScopes(scopes string) []string {
	s := strings.FieldsFunc(scopes, func(r rune) bool { return r == ' ' || r == ',' })
	if !slices.Contains(s, "openid") {
		s = append([]string{"openid"}, s...)
	}
	return s
}

// expandHome replaces a leading ~/ with the home directory.
func expandHome(path string) (string, error) {
	rest, ok := strings.CutPrefix(path, "~/")
	if !ok {
		return path, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the home directory to expand %s: %w", path, err)
	}
	return filepath.Join(home, rest), nil
}
