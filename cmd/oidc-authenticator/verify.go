package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oidc-authenticator/oidc-authenticator/mapping"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/service"
)

func newVerifyCommand() *cobra.Command {
	var (
		configFile  string
		kubeconfig  string
		mappingPath string
		timeout     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify --config FILE [--mapping FILE|DIR | --kubeconfig FILE] [TOKEN|-]",
		Short: "Explain why a token is accepted or denied (reads the token from stdin when it is - or absent)",
		Long: `verify runs one token through the same checks as the server and prints each check, the
resulting Kubernetes user, or the precise reason for the denial. The token itself is never
printed. Exit status: 0 accepted, 1 denied or undecided.

The identity mapping is read from the configuration's mapping source. --mapping uses a local
copy instead (a ConfigMap manifest, or a directory where it is mounted), so that a token can
be checked offline. mapping.configMap is otherwise read with --kubeconfig, in a pod with its
service account, else with your default kubeconfig ($KUBECONFIG or ~/.kube/config).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := readToken(cmd.InOrStdin(), args)
			if err != nil {
				return err
			}
			cfg, err := config.Load(configFile)
			if err != nil {
				return err
			}
			useKubeconfig, note, err := chooseMapping(cfg, mappingPath, kubeconfig, os.Getenv("KUBERNETES_SERVICE_HOST") != "", defaultKubeconfig())
			if err != nil {
				return err
			}
			if note != "" {
				fmt.Fprintln(cmd.OutOrStdout(), note)
			}
			svc, err := service.New(cfg, service.Options{Kubeconfig: useKubeconfig})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			wait := svc.StartIssuers(ctx)
			defer wait()
			loaded, waitMapping := svc.StartMapping(ctx)
			defer waitMapping()
			defer cancel()
			select {
			case <-loaded:
			case <-ctx.Done():
				fmt.Fprintln(cmd.OutOrStdout(), "warning: the identity mapping could not be read within", timeout)
			}
			return explain(ctx, cmd.OutOrStdout(), svc, raw)
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "configuration file (AuthenticatorConfiguration YAML)")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig for reading mapping.configMap (default: in a pod its service account, else $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&mappingPath, "mapping", "", "a local copy of the identity mapping (ConfigMap manifest or mounted directory), used instead of the configuration's mapping source")
	cmd.Flags().DurationVar(&timeout, "timeout", 20*time.Second, "how long to wait for the issuer's discovery and the identity mapping")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// chooseMapping points cfg at the mapping verify reads and returns the kubeconfig to read a
// ConfigMap with: the local copy at path when it is set; else the configuration's own source,
// read with --kubeconfig, else in the pod, else with the user's default kubeconfig
// (defaultKubeconfig, "" when there is none), which note names. A ConfigMap source with none
// of these is refused up front, in one line saying what to pass.
func chooseMapping(cfg *config.Configuration, path, kubeconfig string, inCluster bool, defaultKubeconfig string) (use, note string, err error) {
	if path != "" {
		// Checked here, so that a broken copy is reported as such rather than as a token the
		// server could not decide for want of a mapping.
		in, err := mapping.ReadPath(path)
		if err != nil {
			return "", "", fmt.Errorf("--mapping: %w", err)
		}
		issuers := make([]string, 0, len(cfg.JWT))
		for _, j := range cfg.JWT {
			issuers = append(issuers, j.Issuer.URL)
		}
		if _, err := mapping.ParseWith(in.Data, mapping.ParseOptions{Issuers: issuers, BinaryData: in.BinaryData}); err != nil {
			return "", "", fmt.Errorf("--mapping %s: the server would refuse this mapping: %w", path, err)
		}
		cfg.Mapping.File, cfg.Mapping.ConfigMap, cfg.Mapping.ConfigMapSelector = path, "", nil
		return "", "", nil
	}
	live := "mapping.configMap " + cfg.Mapping.ConfigMap
	if s := cfg.Mapping.ConfigMapSelector; s != nil {
		live = fmt.Sprintf("mapping.configMapSelector (the ConfigMaps of %s labelled %s)", s.Namespace, s.LabelSelector)
	} else if cfg.Mapping.ConfigMap == "" {
		return kubeconfig, "", nil
	}
	if kubeconfig != "" || inCluster {
		return kubeconfig, "", nil
	}
	if defaultKubeconfig != "" {
		return defaultKubeconfig, fmt.Sprintf("note: reading %s with the kubeconfig %s (its current context); --mapping FILE uses a local copy instead", live, defaultKubeconfig), nil
	}
	return "", "", fmt.Errorf("%s is read from the Kubernetes API: pass --kubeconfig FILE to read the live ConfigMap, or --mapping FILE for a local copy (a manifest or a mounted directory)", live)
}

// defaultKubeconfig returns the kubeconfig kubectl would use: the first file of $KUBECONFIG
// that exists, else ~/.kube/config if it exists, else "".
func defaultKubeconfig() string {
	if env := os.Getenv("KUBECONFIG"); env != "" {
		for _, p := range filepath.SplitList(env) {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p
			}
		}
		return ""
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	p := filepath.Join(home, ".kube", "config")
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		return p
	}
	return ""
}

func readToken(stdin io.Reader, args []string) (string, error) {
	if len(args) == 1 && args[0] != "-" {
		return strings.TrimSpace(args[0]), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, authn.MaxTokenBytes+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the token from stdin: %w", err)
	}
	tok := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "Bearer "))
	if tok == "" {
		return "", errors.New("no token given: pass it as an argument or on stdin")
	}
	return tok, nil
}

// explain waits for the token's issuer, authenticates the token with a trace and prints it.
func explain(ctx context.Context, out io.Writer, svc *service.Service, raw string) error {
	if tok, err := authn.ParseUnverified(raw); err == nil {
		for _, is := range svc.Issuers() {
			if is.URL() == tok.Issuer {
				if err := is.WaitReady(ctx); err != nil {
					fmt.Fprintln(out, "warning:", err)
				}
			}
		}
	}
	var trace authn.Trace
	res, err := svc.Authenticator().Authenticate(authn.WithTrace(ctx, &trace), raw)
	if res.Identity != nil {
		fmt.Fprintf(out, "issuer:  %s\nsubject: %s\n", res.Identity.Issuer, res.Identity.Subject)
	}
	fmt.Fprintln(out, "checks:")
	for _, c := range trace.Checks {
		if c.Err != nil {
			fmt.Fprintf(out, "  [-] %s: %v\n", c.Name, c.Err)
			continue
		}
		fmt.Fprintf(out, "  [+] %s: %s\n", c.Name, c.Detail)
	}
	if err != nil {
		d := authn.AsDenial(err)
		verdict := "DENIED"
		if d.Retryable {
			verdict = "UNDECIDED (kube-apiserver does not cache this answer: the token is reviewed again on its next request)"
		}
		fmt.Fprintf(out, "result: %s\n  reason: %s\n  detail: %v\n", verdict, d.Reason, d.Err)
		return fmt.Errorf("token not accepted: %s", d.Reason)
	}
	u := res.User
	fmt.Fprintf(out, "result: AUTHENTICATED\n  username: %s\n  uid:      %s\n  groups:   %s\n", u.Name, u.UID, strings.Join(u.Groups, ", "))
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "  extra:    %s=%s\n", k, strings.Join(u.Extra[k], ","))
	}
	return nil
}
