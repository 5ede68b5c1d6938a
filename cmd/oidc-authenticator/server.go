package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/oidc-authenticator/oidc-authenticator/webhook"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/service"
)

// logFlushInterval bounds how long a log line of the server waits before it is written.
const logFlushInterval = 100 * time.Millisecond

func newServerCommand() *cobra.Command {
	var (
		configFile string
		address    string
		kubeconfig string
		apiserver  string
		profiling  bool
		delay      time.Duration
		listenWait time.Duration
		logs       logFlags
	)
	cmd := &cobra.Command{
		Use:   "server --config FILE",
		Short: "Serve kube-apiserver's TokenReview webhook over HTTPS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := newBatchWriter(cmd.ErrOrStderr(), logFlushInterval)
			defer out.Close()
			log, err := logs.logger(out)
			if err != nil {
				return err
			}
			routeKlog(log)
			cfg, err := config.Load(configFile)
			if err != nil {
				return err
			}
			if address != "" {
				cfg.Server.Address = address
				if errs := cfg.Validate(); len(errs) > 0 {
					return errs.ToAggregate()
				}
			}
			svc, err := service.New(cfg, service.Options{
				Logger: log, Kubeconfig: kubeconfig, APIServerHost: apiserver, Profiling: profiling,
				Version: version, Revision: revision, ShutdownDelay: delay, ListenWait: listenWait,
				// The file is watched and reloaded; what the run learns is kept for the next.
				ConfigFile: configFile, Address: address, KeepState: true,
			})
			if err != nil {
				return err
			}
			if err := svc.Run(cmd.Context()); err != nil {
				return err
			}
			log.Info("stopped")
			return nil
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "configuration file (AuthenticatorConfiguration YAML)")
	cmd.Flags().StringVar(&address, "address", "", "host:port to listen on (overrides server.address)")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig for watching mapping.configMap (default: the pod's service account)")
	cmd.Flags().StringVar(&apiserver, "apiserver-host", os.Getenv("OIDC_AUTHENTICATOR_APISERVER_HOST"),
		"host:port of the Kubernetes API for mapping.configMap, instead of the kubeconfig's server or the kubernetes Service (e.g. the node-local kube-apiserver); default $OIDC_AUTHENTICATOR_APISERVER_HOST")
	cmd.Flags().DurationVar(&delay, "shutdown-delay", webhook.DefaultShutdownDelay,
		"on SIGTERM, keep accepting TokenReviews until another instance listens on the address, at most this long (0: stop accepting at once)")
	cmd.Flags().DurationVar(&listenWait, "listen-wait", 30*time.Second,
		"open the TokenReview listener once the server is ready to judge tokens, or after this long at most (0: at once)")
	cmd.Flags().BoolVar(&profiling, "profiling", false, "serve Go's CPU and heap profiles under /debug/pprof/ (for performance work; off in production)")
	logs.register(cmd)
	_ = cmd.MarkFlagRequired("config")
	return cmd
}
