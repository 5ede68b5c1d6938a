package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/oidc-authenticator/oidc-authenticator/test/dex"
)

// stopGrace is how long the authenticator gets to shut down after SIGTERM.
const stopGrace = 10 * time.Second

// authenticator is the oidc-authenticator webhook run as a child process.
type authenticator struct {
	bin        string // bin/oidc-authenticator
	address    string // 127.0.0.1:PORT it listens on
	stateDir   string // certificates and keys made by `init`
	configFile string // server configuration
	logFile    string // the server's standard output and standard error

	cmd    *exec.Cmd
	exited chan struct{} // closed once the server process has been reaped
	client *http.Client  // trusts the state CA and presents the apiserver client certificate
}

// url returns the authenticator's URL for path.
func (a *authenticator) url(path string) string {
	return "https://" + a.address + path
}

// init runs `oidc-authenticator init`, which creates the CA, the serving certificate and the
// client certificate kube-apiserver presents, and shows its output.
func (a *authenticator) init(ctx context.Context, n *narrator) error {
	n.step("Initialising the authenticator's state directory")
	args := []string{"init", "--state-dir", a.stateDir, "--hostname", "127.0.0.1", "--address", a.address}
	n.say("$ %s %s", filepath.Base(a.bin), strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, a.bin, args...).CombinedOutput()
	n.block(string(out))
	if err != nil {
		return fmt.Errorf("`oidc-authenticator init` failed: %w", err)
	}
	return nil
}

// writeConfig writes the server configuration: trust Dex as issuer for audience "kubernetes",
// take the username from the email claim and prefix groups with "oidc:".
func (a *authenticator) writeConfig(n *narrator, d *dex.Server) error {
	n.step("Writing the server configuration")
	cfg := map[string]any{
		"apiVersion": "oidc-authenticator.io/v1alpha1",
		"kind":       "AuthenticatorConfiguration",
		"server": map[string]any{
			"address":      a.address,
			"stateDir":     a.stateDir,
			"clientCAFile": filepath.Join(a.stateDir, "ca.crt"),
		},
		"jwt": []any{map[string]any{
			"issuer": map[string]any{
				"url":                  d.IssuerURL,
				"audiences":            []string{d.ClientID},
				"certificateAuthority": string(d.CAPEM),
			},
			"claimMappings": map[string]any{
				"username": map[string]any{"claim": "email", "prefix": ""},
				"groups":   map[string]any{"claim": "groups", "prefix": "oidc:"},
				"uid":      map[string]any{"claim": "sub"},
			},
		}},
		"cache": map[string]any{"ttl": "2m"},
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("cannot encode the server configuration: %w", err)
	}
	if err := os.WriteFile(a.configFile, data, 0o600); err != nil {
		return fmt.Errorf("cannot write the server configuration: %w", err)
	}
	n.say("%s:", a.configFile)
	n.block(string(data))
	return nil
}

// start launches `oidc-authenticator server` in its own process group and waits for /readyz.
func (a *authenticator) start(ctx context.Context, n *narrator) error {
	n.step("Starting the authenticator webhook")
	client, err := newMTLSClient(a.stateDir)
	if err != nil {
		return err
	}
	a.client = client
	logFile, err := os.OpenFile(a.logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create the authenticator's log file: %w", err)
	}
	defer logFile.Close() // the child keeps its own copy of the descriptor

	// One instance: on SIGTERM it need not wait long for a successor to listen on its address.
	n.say("$ %s server --config %s --shutdown-delay 1s   (logs go to %s)", filepath.Base(a.bin), a.configFile, a.logFile)
	a.cmd = exec.Command(a.bin, "server", "--config", a.configFile, "--shutdown-delay", "1s")
	a.cmd.Stdout = logFile
	a.cmd.Stderr = logFile
	// Own process group: Ctrl-C in the terminal reaches only the demo, which stops it in order.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		return fmt.Errorf("cannot start the authenticator: %w", err)
	}
	a.exited = make(chan struct{})
	go func() {
		_ = a.cmd.Wait()
		close(a.exited)
	}()

	started := time.Now()
	if err := a.waitReady(ctx); err != nil {
		return fmt.Errorf("the authenticator did not become ready: %w\n--- last lines of its log ---\n%s", err, tail(a.logFile, 20))
	}
	n.say("GET %s answered 200 after %s.", a.url("/readyz"), time.Since(started).Round(time.Millisecond))
	return nil
}

// waitReady polls /readyz until it answers 200, the process exits, readyTimeout passes or ctx ends.
func (a *authenticator) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	lastErr := errors.New("no answer yet")
	for {
		if lastErr = a.checkReady(ctx); lastErr == nil {
			return nil
		}
		select {
		case <-a.exited:
			return fmt.Errorf("the server process exited (%s)", a.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %w)", ctx.Err(), lastErr)
		case <-ticker.C:
		}
	}
}

// checkReady asks /readyz once.
func (a *authenticator) checkReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url("/readyz"), nil)
	if err != nil {
		return fmt.Errorf("cannot build the /readyz request: %w", err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// started reports whether the server process was started (it may have exited since).
func (a *authenticator) started() bool {
	return a.cmd != nil && a.cmd.Process != nil
}

// hasExited reports whether the started server process has already exited.
func (a *authenticator) hasExited() bool {
	select {
	case <-a.exited:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the server's process group and waits for it to exit, using SIGKILL
// if it has not exited after stopGrace.
func (a *authenticator) stop() error {
	if !a.started() {
		return nil
	}
	pgid := a.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cannot send SIGTERM to the authenticator: %w", err)
	}
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-a.exited:
	case <-timer.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-a.exited
		return fmt.Errorf("the authenticator did not exit within %s of SIGTERM and was killed", stopGrace)
	}
	if !a.cmd.ProcessState.Success() {
		return fmt.Errorf("the authenticator exited with %s after SIGTERM; a clean shutdown exits 0", a.cmd.ProcessState)
	}
	return nil
}

// showLogTail prints the last lines of the server's log.
func (a *authenticator) showLogTail(n *narrator, lines int) {
	n.say("Last %d lines of the authenticator's log:", lines)
	n.block(tail(a.logFile, lines))
}

// tail returns the last n lines of the file at path, or why it cannot be read.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
