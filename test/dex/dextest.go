package dex

import (
	"context"
	"testing"
	"time"
)

// Time limits used by StartForTest.
const (
	testBuildTimeout = 10 * time.Minute // a cold build of Dex takes about 5 minutes on 2 cores
	testStartTimeout = 20 * time.Second // Dex itself is ready in well under a second
)

// StartForTest starts Dex for the test t and registers its Stop with t.Cleanup. It allows up to
// ten minutes for a possible cold build of the Dex binary and then twenty seconds for Dex to
// start. If the test fails, the cleanup logs the tail of Dex's log. When opts.Dir is empty it
// uses a directory from t.TempDir. The test is skipped in -short mode.
func StartForTest(t testing.TB, opts Options) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping a test that runs a real Dex in -short mode")
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}

	buildCtx, cancelBuild := context.WithTimeout(t.Context(), testBuildTimeout)
	defer cancelBuild()
	if _, err := Binary(buildCtx); err != nil {
		t.Fatalf("cannot get a Dex binary: %v", err)
	}

	startCtx, cancelStart := context.WithTimeout(t.Context(), testStartTimeout)
	defer cancelStart()
	s, err := Start(startCtx, opts)
	if err != nil {
		t.Fatalf("cannot start Dex: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of Dex's log (%s):\n%s", s.LogFile, s.LogTail(logTailLines))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stopping Dex: %v", err)
		}
	})
	return s
}
