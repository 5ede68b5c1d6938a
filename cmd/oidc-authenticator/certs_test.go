package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/pki"
)

// Rule: certs check exits 0 while every certificate is valid beyond the window, 2 when one
// expires within it, 3 once one has expired or is missing; its lines name each certificate's
// expiry and days left.
func TestCertsCheckWindows(t *testing.T) {
	dir := t.TempDir()
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := pki.Ensure(pki.Files{Dir: dir}, pki.Options{Now: func() time.Time { return issued }, Jitter: func() time.Duration { return 0 }}); err != nil {
		t.Fatal(err)
	}
	leafEnd := issued.AddDate(5, 0, 0)
	run := func(now time.Time, extra ...string) (string, int) {
		cmd := newCertsCheckCommand(func() time.Time { return now })
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		cmd.SetArgs(append([]string{"--state-dir", dir}, extra...))
		err := cmd.Execute()
		var e *exitError
		switch {
		case err == nil:
			return out.String(), 0
		case errors.As(err, &e):
			return out.String(), e.code
		default:
			t.Fatalf("certs check: %v", err)
			return "", 0
		}
	}
	for _, tc := range []struct {
		name string
		now  time.Time
		args []string
		code int
		want string
	}{
		{"a year in", issued.AddDate(1, 0, 0), nil, 0, "1461 days left: ok"},
		{"31 days before the leaves expire", leafEnd.Add(-31 * 24 * time.Hour), nil, 0, "31 days left: ok"},
		{"29 days before", leafEnd.Add(-29 * 24 * time.Hour), nil, exitCertsExpiring, "29 days left: EXPIRES SOON"},
		{"29 days before, a 7-day window", leafEnd.Add(-29 * 24 * time.Hour), []string{"--warn-within", "168h"}, 0, "29 days left: ok"},
		{"a day after", leafEnd.Add(24 * time.Hour), nil, exitCertsExpired, "EXPIRED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := run(tc.now, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) || !strings.Contains(out, leafEnd.Format(time.RFC3339)) {
				t.Fatalf("exit %d, want %d and %q:\n%s", code, tc.code, tc.want, out)
			}
		})
	}
	if err := os.Remove(pki.Files{Dir: dir}.ClientCert()); err != nil {
		t.Fatal(err)
	}
	if out, code := run(issued); code != exitCertsExpired || !strings.Contains(out, "client") || !strings.Contains(out, "UNREADABLE") {
		t.Fatalf("a missing client certificate: exit %d:\n%s", code, out)
	}
}

// Rule: init renews the serving and client certificates that expire within --renew-within,
// for their keys, keeps the CA, and rewrites kube-apiserver's kubeconfig for the new client
// certificate; afterwards certs check passes. With --renew-within 0 nothing is renewed.
func TestInitRenewsAndRewritesTheKubeconfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	files := pki.Files{Dir: dir}
	// Issued five years less ten days ago: the leaves expire in ten days.
	issued := time.Now().AddDate(-5, 0, 10)
	if _, err := pki.Ensure(files, pki.Options{Hostnames: []string{"127.0.0.1"}, Now: func() time.Time { return issued }, Jitter: func() time.Duration { return 0 }}); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.EnsureKubeconfig(files, "https://127.0.0.1:31000/authenticate"); err != nil {
		t.Fatal(err)
	}
	read := func(path string) string { return string(must(os.ReadFile(path))) }
	before := map[string]string{}
	for _, p := range []string{files.CACert(), files.CAKey(), files.ServerCert(), files.ServerKey(), files.ClientCert(), files.ClientKey(), files.Kubeconfig()} {
		before[p] = read(p)
	}
	args := []string{"init", "--state-dir", dir, "--hostname", "127.0.0.1", "--address", "127.0.0.1:31000"}
	out, err := run(t, "", append(args, "--renew-within", "0")...)
	if err != nil || strings.Contains(out, "renewed") {
		t.Fatalf("--renew-within 0 renewed: %v\n%s", err, out)
	}
	out, err = run(t, "", args...)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, p := range []string{files.ServerCert(), files.ClientCert()} {
		if !strings.Contains(out, "renewed   "+p) || read(p) == before[p] {
			t.Errorf("%s not renewed:\n%s", p, out)
		}
	}
	if !strings.Contains(out, "updated   "+files.Kubeconfig()) || read(files.Kubeconfig()) == before[files.Kubeconfig()] {
		t.Errorf("the kubeconfig was not rewritten for the new client certificate:\n%s", out)
	}
	if !strings.Contains(read(files.Kubeconfig()), base64.StdEncoding.EncodeToString([]byte(read(files.ClientCert())))) {
		t.Error("the kubeconfig does not embed the renewed client certificate")
	}
	for _, p := range []string{files.CACert(), files.CAKey(), files.ServerKey(), files.ClientKey()} {
		if read(p) != before[p] {
			t.Errorf("%s changed", p)
		}
	}
	if out, err := run(t, "", "certs", "check", "--state-dir", dir); err != nil {
		t.Fatalf("certs check after the renewal: %v\n%s", err, out)
	}
}
