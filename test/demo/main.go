// Command demo shows oidc-authenticator working end to end on this machine.
//
// It starts a real Dex OIDC provider, initialises and starts the authenticator webhook, obtains
// id_tokens for two Dex users and sends the webhook the TokenReviews kube-apiserver would send,
// narrating each step on standard output. Everything runs on 127.0.0.1 in a temporary directory
// that is removed at the end. Run it from the repository with `make demo` (after `make build`).
//
// The authenticator binary is bin/oidc-authenticator under the repository root, or
// $OIDC_AUTHENTICATOR_BIN when set; Dex is found or built as test/dex.Binary describes.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/test/dex"
)

// Time limits of the demo's steps.
const (
	dexTimeout   = 10 * time.Minute // includes a possible cold build of Dex (about 5 minutes)
	readyTimeout = 30 * time.Second // for the authenticator's /readyz
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, newNarrator(os.Stdout))
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case err != nil && interrupted:
		fmt.Fprintln(os.Stderr, "\ndemo interrupted: everything it started has been stopped and its files removed")
		os.Exit(1)
	case err != nil:
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

// run performs the whole demo, cleaning up everything it started before it returns.
func run(ctx context.Context, n *narrator) (err error) {
	root, err := dex.RepoRoot()
	if err != nil {
		return err
	}
	authenticatorBin := os.Getenv("OIDC_AUTHENTICATOR_BIN")
	if authenticatorBin == "" {
		authenticatorBin = filepath.Join(root, "bin", "oidc-authenticator")
	}
	if fi, statErr := os.Stat(authenticatorBin); statErr != nil || fi.IsDir() {
		return fmt.Errorf("%s is missing: build it first with `make build`", authenticatorBin)
	}
	tmp, err := os.MkdirTemp("", "oidc-authenticator-demo-")
	if err != nil {
		return fmt.Errorf("cannot create a temporary directory: %w", err)
	}
	defer func() {
		if rmErr := os.RemoveAll(tmp); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("cannot remove the demo's temporary directory: %w", rmErr))
		} else {
			n.say("Removed the temporary directory %s.", tmp)
		}
	}()

	d, err := startDex(ctx, n, root, filepath.Join(tmp, "dex"))
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := d.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stopping Dex: %w", stopErr))
		}
		n.say("Stopped Dex.")
	}()

	a := &authenticator{
		bin:        authenticatorBin,
		stateDir:   filepath.Join(tmp, "state"),
		configFile: filepath.Join(tmp, "authenticator.yaml"),
		logFile:    filepath.Join(tmp, "authenticator.log"),
	}
	if a.address, err = freeAddress(ctx); err != nil {
		return err
	}
	if err := a.init(ctx, n); err != nil {
		return err
	}
	if err := a.writeConfig(n, d); err != nil {
		return err
	}
	defer func() {
		if !a.started() {
			return
		}
		n.step("Stopping the authenticator")
		if a.hasExited() {
			n.say("The authenticator had already exited (%s).", a.cmd.ProcessState)
		} else if stopErr := a.stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		} else {
			n.say("The authenticator shut down cleanly after SIGTERM.")
		}
		a.showLogTail(n, 15)
	}()
	if err := a.start(ctx, n); err != nil {
		return err
	}

	tokens, err := fetchTokens(ctx, n, d)
	if err != nil {
		return err
	}
	return reviewTokens(ctx, n, a, tokens)
}

// startDex starts Dex with its files in dir, building bin/dex under root first if needed.
func startDex(ctx context.Context, n *narrator, root, dir string) (*dex.Server, error) {
	n.step("Starting Dex, a real OIDC provider")
	n.say("Dex plays your identity provider: it knows two users, alice (email verified, groups")
	n.say("developers and admins) and bob (email NOT verified, group developers).")
	ctx, cancel := context.WithTimeout(ctx, dexTimeout)
	defer cancel()
	if _, err := os.Stat(filepath.Join(root, "bin", "dex")); err != nil && os.Getenv("DEX_BIN") == "" {
		n.say("(If bin/dex does not exist yet it is built now; the first build takes about 5 minutes.)")
	}
	d, err := dex.Start(ctx, dex.Options{Dir: dir})
	if err != nil {
		return nil, fmt.Errorf("cannot start Dex: %w", err)
	}
	n.say("Dex is serving at %s (its HTTPS certificate comes from a throw-away CA).", d.IssuerURL)
	return d, nil
}
