package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/pki"
)

// defaultRenewWithin is init's --renew-within and certs check's --warn-within: 30 days.
const defaultRenewWithin = 30 * 24 * time.Hour

func newInitCommand() *cobra.Command {
	var (
		stateDir, hostname, address string
		renewWithin                 time.Duration
	)
	cmd := &cobra.Command{
		Use:   "init --state-dir DIR",
		Short: "Create the certificates and the kubeconfig kube-apiserver uses to call the webhook",
		Long: `init creates, in the state directory, whatever is missing of: a CA, a serving certificate
for the webhook, a client certificate for kube-apiserver, and the kubeconfig to pass to
kube-apiserver's --authentication-token-webhook-config-file. It rewrites nothing that is
already right, so running it again is safe: existing keys are never overwritten; the serving
certificate is re-issued (for its existing key) only when it lacks the --hostname asked for;
the serving and client certificates are renewed (for their existing keys) when they expire
within --renew-within, and a valid CA is never replaced; the kubeconfig is rewritten only when what it says would change (another --address or
--hostname, a re-issued certificate). It prints, per file, whether it was created, kept,
re-issued or updated.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, port, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("--address %q: want host:port: %w", address, err)
			}
			files := pki.Files{Dir: stateDir}
			res, err := pki.Ensure(files, pki.Options{Hostnames: []string{hostname}, ReissueForHostnames: true, RenewWithin: renewWithin})
			if err != nil {
				return err
			}
			serverURL := (&url.URL{Scheme: "https", Host: net.JoinHostPort(hostname, port), Path: "/authenticate"}).String()
			kubeconfigDone, err := pki.EnsureKubeconfig(files, serverURL)
			if err != nil {
				return err
			}
			cacheDone, cacheDir, err := ensureCacheDir(stateDir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printInitResult(out, files, res, hostname)
			fmt.Fprintf(out, "%-9s %s\n", kubeconfigDone, files.Kubeconfig())
			fmt.Fprintf(out, "%-9s %s/\n", cacheDone, cacheDir)
			fmt.Fprintf(out, `
In the webhook's configuration file, set:
  server:
    address: %s
    stateDir: %s
    clientCAFile: %s

Add these flags to kube-apiserver (and mount %s into its pod):
  --authentication-token-webhook-config-file=%s
  --authentication-token-webhook-version=v1
  --authentication-token-webhook-cache-ttl=30s
`, address, stateDir, files.CACert(), stateDir, files.Kubeconfig())
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", config.DefaultStateDir, "directory for the certificates, keys and kubeconfig")
	cmd.Flags().StringVar(&hostname, "hostname", "127.0.0.1", "name or IP kube-apiserver uses to reach the webhook")
	cmd.Flags().DurationVar(&renewWithin, "renew-within", defaultRenewWithin, "renew the serving and client certificates when they expire within this window (0: never)")
	cmd.Flags().StringVar(&address, "address", config.DefaultAddress, "address the webhook listens on (its port goes into the kubeconfig)")
	return cmd
}

// printInitResult prints what Ensure did with each file, in a fixed order.
func printInitResult(out io.Writer, files pki.Files, res pki.Result, hostname string) {
	for _, path := range []string{files.CACert(), files.CAKey(), files.ServerCert(), files.ServerKey(), files.ClientCert(), files.ClientKey()} {
		switch {
		case slices.Contains(res.Created, path):
			fmt.Fprintf(out, "%-9s %s\n", "created", path)
		case slices.Contains(res.Renewed, path):
			fmt.Fprintf(out, "%-9s %s (it expired or was about to)\n", "renewed", path)
		case slices.Contains(res.Reissued, path):
			fmt.Fprintf(out, "%-9s %s (it did not name %s)\n", "re-issued", path, hostname)
		case slices.Contains(res.Kept, path):
			fmt.Fprintf(out, "%-9s %s\n", "kept", path)
		}
	}
}
