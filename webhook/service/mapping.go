package service

import (
	"context"
	"fmt"
	"net"
	"path/filepath"

	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/oidc-authenticator/oidc-authenticator/mapping"
	"github.com/oidc-authenticator/oidc-authenticator/webhook"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
)

// newMapping builds the identity mapping store and the source that feeds it, or nil, nil
// when the configuration names no source. The store reports every reload to the metrics and,
// for ConfigMaps, as Events on them.
func (s *Service) newMapping(cfg config.Mapping, issuers []string, kubeconfig, apiserverHost string) (*mapping.Store, mapping.Source, error) {
	var (
		source mapping.Source
		events interface{ Event(refused error) } // a Kubernetes source records Events
	)
	switch {
	case cfg.File != "":
		source = &mapping.FileSource{Path: cfg.File}
	case cfg.ConfigMap != "":
		ns, name, err := config.SplitConfigMap(cfg.ConfigMap)
		if err != nil {
			return nil, nil, fmt.Errorf("mapping.configMap: %w", err)
		}
		client, err := kubeClient(kubeconfig, apiserverHost)
		if err != nil {
			return nil, nil, err
		}
		cm := &mapping.ConfigMapSource{Client: client, Namespace: ns, Name: name, Logger: s.log}
		source, events = cm, cm
	case cfg.ConfigMapSelector != nil:
		client, err := kubeClient(kubeconfig, apiserverHost)
		if err != nil {
			return nil, nil, err
		}
		set := &mapping.ConfigMapSetSource{Client: client, Namespace: cfg.ConfigMapSelector.Namespace,
			Selector: cfg.ConfigMapSelector.LabelSelector, Logger: s.log}
		source, events = set, set
	default:
		return nil, nil, nil
	}
	var persistFile string
	if s.opts.KeepState {
		persistFile = filepath.Join(s.cfg.Server.StateDir, stateCacheDir, "mapping.json")
	}
	store := mapping.NewStore(mapping.StoreOptions{
		PersistFile:    persistFile,
		PersistSubject: source.String(),
		Issuers:        issuers,
		RequireMatch:   cfg.RequireMatch,
		Logger:         s.log.With("source", source.String()),
		OnReload: func(result string) {
			s.metrics.MappingReloads.WithLabelValues(result).Inc()
			if events != nil && result == mapping.ReloadSuccess {
				events.Event(nil)
			}
		},
		OnReject: func(_ mapping.Snapshot, err error) {
			if events != nil {
				events.Event(err)
			}
		},
		Observer: s.metrics,
	})
	return store, source, nil
}

// kubeClient connects to the Kubernetes API with the kubeconfig file, or with the pod's
// service account when it is "", for mapping.configMap or mapping.configMapSelector.
// apiserverHost, when set (host:port), is where the API is reached instead: the node-local
// kube-apiserver, so that the webhook depends neither on
// cluster DNS nor on kube-proxy's Service routing, which themselves need kube-apiserver.
// The credentials and the CA stay those of the kubeconfig or the service account.
func kubeClient(kubeconfig, apiserverHost string) (corev1client.CoreV1Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		if kubeconfig == "" {
			return nil, fmt.Errorf("mapping.configMap and mapping.configMapSelector need the Kubernetes API: not running in a pod (%w); pass --kubeconfig", err)
		}
		return nil, fmt.Errorf("the mapping's ConfigMaps: read --kubeconfig %s: %w", kubeconfig, err)
	}
	if apiserverHost != "" {
		if _, _, err := net.SplitHostPort(apiserverHost); err != nil {
			return nil, fmt.Errorf("--apiserver-host %q: want host:port: %w", apiserverHost, err)
		}
		rc.Host = "https://" + apiserverHost
	}
	rc.UserAgent = "oidc-authenticator"
	client, err := corev1client.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("the mapping's ConfigMaps: build the Kubernetes client: %w", err)
	}
	return client, nil
}

// StartMapping runs the mapping source in the background until ctx ends. The returned
// channel is closed once the source has delivered its first version (or its absence);
// wait waits for the source to stop. Without a source the channel is already closed.
func (s *Service) StartMapping(ctx context.Context) (first <-chan struct{}, wait func()) {
	ch := make(chan struct{})
	if s.source == nil {
		close(ch)
		return ch, func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		delivered := false
		err := s.source.Run(ctx, func(snap mapping.Snapshot) {
			s.mapping.Update(snap)
			if !delivered {
				delivered = true
				close(ch)
			}
		})
		if err != nil && ctx.Err() == nil {
			s.log.Error("the identity mapping source stopped; the mapping in force stays until restart", "source", s.source.String(), "err", err)
		}
	}()
	return ch, func() { <-done }
}

// mappingReadiness is the /readyz?verbose line for the identity mapping. The server is not
// ready until the source has delivered its first version; after that the line is only
// informational: with no valid mapping the server still serves, and says so here.
func (s *Service) mappingReadiness() (webhook.CheckResult, bool) {
	if s.mapping == nil {
		return webhook.CheckResult{}, false
	}
	// Versions and reasons, not entries: the values a refused version named (emails, subjects,
	// user names) are left out; the log has the whole text.
	ok, detail := s.mapping.PublicStatus()
	return webhook.CheckResult{Name: "mapping " + s.source.String(), OK: ok, Detail: detail, Informational: !s.mapping.Pending()}, true
}
