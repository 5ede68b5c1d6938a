package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/oidc-authenticator/oidc-authenticator/login"
	"github.com/oidc-authenticator/oidc-authenticator/login/execcredential"
	"github.com/oidc-authenticator/oidc-authenticator/login/tokencache"
)

// envPassword is read when --password is not given.
const envPassword = "OIDC_PASSWORD"

func newTokenCommand() *cobra.Command {
	var (
		flags        = newLoginFlags()
		password     string
		forceRefresh bool
	)
	cmd := &cobra.Command{
		Use:   "token --issuer-url URL --client-id ID [flags]",
		Short: "Log in and print the id_token as an ExecCredential: kubectl's exec credential plugin",
		Long: `token prints an ExecCredential (client.authentication.k8s.io/v1, or the version
KUBERNETES_EXEC_INFO asks for) whose token is an id_token of the issuer and whose
expirationTimestamp is the id_token's exp. kubectl runs it from the exec stanza that
"oidc-authenticator kubeconfig" writes.

The id_token comes from the token cache while it is fresh (no network request at all), else
from the refresh token when less than a tenth of its lifetime or a minute is left, else from a
new login with --grant-type. Processes started at once share one login. Messages for the user
go to standard error; standard output carries only the ExecCredential.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := flags.options(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			opts.Password, opts.ForceRefresh = password, forceRefresh
			if opts.Password == "" {
				opts.Password = os.Getenv(envPassword)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), flags.timeout)
			defer cancel()
			tok, err := login.Login(ctx, opts)
			if err != nil {
				return err
			}
			out, err := execcredential.Encode(os.Getenv(execcredential.EnvExecInfo), tok.IDToken, tok.Expiry)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().AddFlagSet(flags.set)
	cmd.Flags().StringVar(&password, "password", "", "password for the password grant (default $"+envPassword+"; asked on a terminal when neither is set)")
	cmd.Flags().BoolVar(&forceRefresh, "force-refresh", false, "get a new id_token even if the cached one is fresh")
	_ = cmd.MarkFlagRequired("issuer-url")
	_ = cmd.MarkFlagRequired("client-id")
	cmd.AddCommand(newTokenCleanCommand())
	return cmd
}

func newTokenCleanCommand() *cobra.Command {
	var cacheDir string
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Remove the token cache, so that the next token logs in again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := expandHome(cacheDir)
			if err != nil {
				return err
			}
			if err := tokencache.Dir(dir).Clean(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "removed", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&cacheDir, "token-cache-dir", defaultCacheDir, "directory of the token cache")
	return cmd
}
