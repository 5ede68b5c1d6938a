package main

import (
	"fmt"
	"net"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/pki"
)

func newInitCommand() *cobra.Command {
	var stateDir, hostname, address string
	cmd := &cobra.Command{
		Use:   "init --state-dir DIR",
		Short: "Create the certificates and the kubeconfig kube-apiserver uses to call the webhook",
		Long: `init creates, in the state directory, whatever is missing of: a CA, a serving certificate
for the webhook, a client certificate for kube-apiserver, and the kubeconfig to pass to
kube-apiserver's --authentication-token-webhook-config-file. Existing keys are never
overwritten, so running it again is safe.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, port, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("--address %q: want host:port: %w", address, err)
			}
			files := pki.Files{Dir: stateDir}
			res, err := pki.Ensure(files, pki.Options{Hostnames: []string{hostname}})
			if err != nil {
				return err
			}
			serverURL := (&url.URL{Scheme: "https", Host: net.JoinHostPort(hostname, port), Path: "/authenticate"}).String()
			if err := pki.WriteKubeconfig(files, serverURL); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, p := range res.Created {
				fmt.Fprintln(out, "created", p)
			}
			for _, p := range res.Kept {
				fmt.Fprintln(out, "kept   ", p)
			}
			fmt.Fprintln(out, "wrote  ", files.Kubeconfig())
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
	cmd.Flags().StringVar(&address, "address", config.DefaultAddress, "address the webhook listens on (its port goes into the kubeconfig)")
	return cmd
}
