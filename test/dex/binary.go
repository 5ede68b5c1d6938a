package dex

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// modulePath is the module path whose go.mod marks the repository root.
const modulePath = "github.com/oidc-authenticator/oidc-authenticator"

// dexPackage is the Go package built into the Dex binary.
const dexPackage = "github.com/dexidp/dex/cmd/dex"

// RepoRoot returns the root directory of the oidc-authenticator repository: the nearest
// directory, starting at the working directory and walking up, whose go.mod declares our module.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("cannot determine the working directory: %w", err)
	}
	for dir := wd; ; {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && moduleName(data) == modulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("cannot find the repository root: no go.mod declaring module %s in %s or any directory above it", modulePath, wd)
		}
		dir = parent
	}
}

// moduleName returns the module path declared by the go.mod contents data, or "" if none.
func moduleName(data []byte) string {
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], "\"`")
		}
	}
	return ""
}

// Binary returns the path of a Dex binary: $DEX_BIN if set, else <repo root>/bin/dex.
//
// If <repo root>/bin/dex is missing, Binary builds it with `go build` in the tools module
// <repo root>/test/tools/dex (CGO_ENABLED=1, needed by go-sqlite3) into a temporary directory
// beside the target and renames the result into place, so that concurrent callers never see a
// half-written binary. A lock file in bin/ keeps concurrent callers from building twice. A cold
// build takes several minutes on a small machine; ctx bounds both the wait for the lock and the build.
func Binary(ctx context.Context) (string, error) {
	if p := os.Getenv("DEX_BIN"); p != "" {
		if !isExecutable(p) {
			return "", fmt.Errorf("DEX_BIN is set to %s, but that is not an executable file", p)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	binDir := filepath.Join(root, "bin")
	target := filepath.Join(binDir, "dex")
	if isExecutable(target) {
		return target, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("cannot create the directory for the Dex binary: %w", err)
	}
	unlock, err := lock(ctx, filepath.Join(binDir, ".dex-build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(target) { // built by another caller while we waited for the lock
		return target, nil
	}
	if err := build(ctx, filepath.Join(root, "test", "tools", "dex"), target); err != nil {
		return "", err
	}
	return target, nil
}

// build compiles Dex in the tools module moduleDir and renames the binary to target.
func build(ctx context.Context, moduleDir, target string) error {
	if fi, err := os.Stat(filepath.Join(moduleDir, "go.mod")); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("cannot build Dex: the tools module %s is missing (no go.mod there)", moduleDir)
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(target), ".dex-build-")
	if err != nil {
		return fmt.Errorf("cannot create a temporary directory for building Dex: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "dex")

	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, dexPackage)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	cmd.Stdout = &out
	cmd.Stderr = &out
	// Own process group, so cancelling also stops the compilers `go build` starts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("building Dex in %s did not finish in time (a cold build takes about 5 minutes): %w", moduleDir, ctxErr)
		}
		return fmt.Errorf("building Dex with `go build %s` in %s failed: %w\n%s", dexPackage, moduleDir, err, lastLines(out.String(), 40))
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("cannot move the freshly built Dex binary into place: %w", err)
	}
	return nil
}

// lock takes an exclusive advisory lock on the file at path, polling until it is free or ctx
// ends. The returned function releases it.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open the Dex build lock %s: %w", path, err)
	}
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil // closing the file releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("cannot lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("gave up waiting for another process building Dex (lock %s): %w", path, ctx.Err())
		case <-ticker.C:
		}
	}
}

// isExecutable reports whether path is a non-empty regular file with an execute bit set.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0 && fi.Mode().Perm()&0o111 != 0
}

// lastLines returns at most the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
