package main

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
)

// logFlags are the logging flags shared by the commands that log.
type logFlags struct {
	format    string
	verbosity int
}

func (l *logFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&l.format, "log-format", "text", "log format: text or json")
	cmd.Flags().IntVarP(&l.verbosity, "verbosity", "v", 0, "log verbosity: 0 logs decisions (but not tokens allowed again from the cache) and warnings; 1 or more adds those and debug detail")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if l.verbosity > 0 {
		opts.Level = slog.LevelDebug
	}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", l.format)
	}
}

// routeKlog sends the lines that client-go logs through klog (watch errors, throttling,
// events) to log, so that they come out in the same format (--log-format json included)
// and stream as the server's own. klog's logger is process-wide: only the server sets it.
func routeKlog(log *slog.Logger) {
	klog.SetSlogLogger(log)
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "oidc-authenticator",
		Short:         "Log into Kubernetes with OpenID Connect id_tokens through a TokenReview webhook",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServerCommand(), newInitCommand(), newVerifyCommand(), newMappingCommand(),
		newTokenCommand(), newKubeconfigCommand(), newVersionCommand(), newCertsCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, git revision, build date and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "oidc-authenticator %s\nrevision: %s\nbuilt: %s\ngo: %s %s/%s\n",
				version, revision, buildDate, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
