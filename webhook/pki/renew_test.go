package pki

import (
	"bytes"
	"crypto/x509"
	"os"
	"slices"
	"testing"
	"time"
)

// Rule: with a renewal window, Ensure re-issues the server and client certificates that
// expire within it (or have expired), for their existing keys, and keeps the CA and every
// key; outside the window it changes nothing. A fixed jitter makes the validity exact.
func TestEnsureRenewsLeavesWithinTheWindow(t *testing.T) {
	f := Files{Dir: t.TempDir()}
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	jitter := func() time.Duration { return 3 * 24 * time.Hour }
	opts := func(now time.Time) Options {
		return Options{Now: func() time.Time { return now }, RenewWithin: 30 * 24 * time.Hour, Jitter: jitter}
	}
	if _, err := Ensure(f, opts(issued)); err != nil {
		t.Fatal(err)
	}
	expires := issued.AddDate(5, 0, 0).Add(-3 * 24 * time.Hour)
	if got := readCert(t, f.ServerCert()).NotAfter; !got.Equal(expires) {
		t.Fatalf("server NotAfter %v, want five years less the jitter, %v", got, expires)
	}
	before := map[string][]byte{}
	for _, p := range []string{f.CACert(), f.CAKey(), f.ServerCert(), f.ServerKey(), f.ClientCert(), f.ClientKey()} {
		before[p] = readFile(t, p)
	}

	// 31 days before expiry: outside the window, nothing changes.
	res, err := Ensure(f, opts(expires.Add(-31*24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Renewed)+len(res.Created)+len(res.Reissued) != 0 {
		t.Fatalf("outside the window: %+v", res)
	}

	// 29 days before expiry: both leaves are renewed, for the same keys; the CA stays.
	renewAt := expires.Add(-29 * 24 * time.Hour)
	res, err = Ensure(f, opts(renewAt))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{f.ServerCert(), f.ClientCert()}; !slices.Equal(res.Renewed, want) {
		t.Fatalf("renewed %v, want %v", res.Renewed, want)
	}
	for _, p := range []string{f.CACert(), f.CAKey(), f.ServerKey(), f.ClientKey()} {
		if !bytes.Equal(before[p], readFile(t, p)) {
			t.Errorf("%s changed", p)
		}
	}
	pool := caPool(t, f)
	for _, p := range []string{f.ServerCert(), f.ClientCert()} {
		c := readCert(t, p)
		if want := renewAt.AddDate(5, 0, 0).Add(-3 * 24 * time.Hour); !c.NotAfter.Equal(want) {
			if caEnd := readCert(t, f.CACert()).NotAfter; !c.NotAfter.Equal(caEnd) {
				t.Errorf("%s NotAfter %v, want %v (or the CA's end, %v)", p, c.NotAfter, want, caEnd)
			}
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: renewAt}); err != nil {
			t.Errorf("%s does not chain to the kept CA: %v", p, err)
		}
	}

	// An expired leaf is renewed too.
	if err := os.Remove(f.ServerCert()); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(f, Options{Now: func() time.Time { return issued }, Jitter: jitter}); err != nil {
		t.Fatal(err)
	}
	later := issued.AddDate(6, 0, 0)
	res, err = Ensure(f, opts(later))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Renewed, f.ServerCert()) {
		t.Fatalf("the expired server certificate was not renewed: %+v", res)
	}
}
