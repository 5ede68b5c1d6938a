package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/oidc-authenticator/oidc-authenticator/login/kubeconfig"
)

func newKubeconfigCommand() *cobra.Command {
	var (
		flags                                  = newLoginFlags()
		file, user, context, cluster, password string
		command                                string
	)
	cmd := &cobra.Command{
		Use:   "kubeconfig --issuer-url URL --client-id ID [--user NAME] [--context NAME] [flags]",
		Short: "Add (or update) a kubeconfig user that logs in with oidc-authenticator token",
		Long: `kubeconfig writes a users[] entry whose exec stanza runs "oidc-authenticator token" with the
login flags given here, and with --context a contexts[] entry for that user, into the kubeconfig
--kubeconfig or $KUBECONFIG names (default ~/.kube/config). The other entries are left as they
are. No token is written: kubectl runs the plugin whenever it needs one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if command == "" {
				self, err := os.Executable()
				if err != nil {
					return fmt.Errorf("cannot find this program's path (pass --exec-command): %w", err)
				}
				command = self
			}
			args, err := flags.args()
			if err != nil {
				return err
			}
			exec := &clientcmdapi.ExecConfig{
				APIVersion:      clientauthv1.SchemeGroupVersion.String(),
				Command:         command,
				Args:            append([]string{"token"}, args...),
				InteractiveMode: clientcmdapi.IfAvailableExecInteractiveMode,
			}
			if password != "" {
				exec.Env = []clientcmdapi.ExecEnvVar{{Name: envPassword, Value: password}}
			}
			paths := clientcmd.NewDefaultPathOptions()
			paths.LoadingRules.ExplicitPath = file
			res, err := kubeconfig.Write(paths, kubeconfig.Entry{User: user, Exec: exec, Context: context, Cluster: cluster})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			verb := "added"
			if res.UserExisted {
				verb = "updated"
			}
			fmt.Fprintf(out, "%s user %q in %s\n", verb, user, res.File)
			if password != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: the password is stored in clear text in %s (env %s of the exec stanza)\n", res.File, envPassword)
			}
			if context != "" {
				fmt.Fprintf(out, "context %q: cluster %q, user %q\ntry: kubectl --context %s auth whoami\n", context, res.Cluster, user, context)
			} else {
				fmt.Fprintf(out, "try: kubectl --user %s auth whoami\n", user)
			}
			return nil
		},
	}
	cmd.Flags().AddFlagSet(flags.set)
	cmd.Flags().StringVar(&file, "kubeconfig", "", "the kubeconfig to write (default: $KUBECONFIG, else ~/.kube/config)")
	cmd.Flags().StringVar(&user, "user", "oidc", "name of the users[] entry")
	cmd.Flags().StringVar(&context, "context", "", "also create or update this contexts[] entry, with --user")
	cmd.Flags().StringVar(&cluster, "cluster", "", "the context's cluster (default: the context's own, else the current context's)")
	cmd.Flags().StringVar(&password, "password", "", "store this password for the password grant in the exec stanza's env ("+envPassword+"), in clear text; without it the plugin asks on the terminal")
	cmd.Flags().StringVar(&command, "exec-command", "", "the oidc-authenticator the exec stanza runs (default: this program's absolute path)")
	_ = cmd.MarkFlagRequired("issuer-url")
	_ = cmd.MarkFlagRequired("client-id")
	return cmd
}
