package mapping

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// ConfigMapSource watches one ConfigMap through the Kubernetes API with a client-go
// informer restricted to that object (so its RBAC can name it), and reports each accepted
// or refused version as an Event on the ConfigMap. It needs only the core/v1 client, not a
// whole clientset: the server links no client for any other API group.
type ConfigMapSource struct {
	Client          typedcorev1.CoreV1Interface
	Namespace, Name string
	Logger          *slog.Logger

	mu       sync.Mutex
	recorder record.EventRecorder
	current  *corev1.ConfigMap // the last version delivered, for Events
}

func (c *ConfigMapSource) String() string {
	return fmt.Sprintf("ConfigMap %s/%s", c.Namespace, c.Name)
}

// Run delivers the ConfigMap's data now and after every change until ctx ends. A ConfigMap
// that does not exist is delivered as Deleted.
func (c *ConfigMapSource) Run(ctx context.Context, update func(Snapshot)) error {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	recorder, stop := newRecorder(ctx, c.Client, c.Namespace)
	defer stop()
	c.mu.Lock()
	c.recorder = recorder
	c.mu.Unlock()

	configMaps := c.Client.ConfigMaps(c.Namespace)
	byName := fields.OneTermEqualSelector("metadata.name", c.Name).String()
	informer := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return configMaps.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return configMaps.Watch(ctx, o)
		},
	}, &corev1.ConfigMap{}, 0, cache.Indexers{})
	deliver := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || cm.Name != c.Name {
			return
		}
		c.mu.Lock()
		c.current = cm
		c.mu.Unlock()
		update(snapshotOf(cm))
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    deliver,
		UpdateFunc: func(_, obj any) { deliver(obj) },
		DeleteFunc: func(any) {
			c.mu.Lock()
			c.current = nil
			c.mu.Unlock()
			update(Snapshot{Deleted: true})
		},
	}); err != nil {
		return fmt.Errorf("watch %s: %w", c, err)
	}
	stopped, err := runInformer(ctx, informer, c.String(), func(err error) {
		log.Warn("watching the mapping ConfigMap failed; retrying, the mapping in force stays", "configMap", c.String(), "err", err)
	})
	if err != nil {
		return err
	}
	defer func() { <-stopped }()
	if _, exists, _ := informer.GetStore().GetByKey(c.Namespace + "/" + c.Name); !exists {
		update(Snapshot{Deleted: true})
	}
	<-ctx.Done()
	return nil
}

func snapshotOf(cm *corev1.ConfigMap) Snapshot {
	return Snapshot{Data: cm.Data, BinaryData: binaryDataKeys(cm), Version: cm.ResourceVersion}
}

// Event records the outcome of a version on the ConfigMap: a Warning when it was refused.
func (c *ConfigMapSource) Event(refused error) {
	c.mu.Lock()
	cm, rec := c.current, c.recorder
	c.mu.Unlock()
	if cm == nil || rec == nil {
		return
	}
	if refused != nil {
		rec.Eventf(cm, corev1.EventTypeWarning, "MappingRejected",
			"resourceVersion %s refused; the previous mapping stays in force: %v", cm.ResourceVersion, refused)
		return
	}
	rec.Eventf(cm, corev1.EventTypeNormal, "MappingLoaded", "resourceVersion %s is in force", cm.ResourceVersion)
}

// newRecorder records Events on the ConfigMaps of namespace through client until stop is
// called or ctx ends.
func newRecorder(ctx context.Context, client typedcorev1.CoreV1Interface, namespace string) (recorder record.EventRecorder, stop func()) {
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.Events(namespace)})
	return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "oidc-authenticator"}), broadcaster.Shutdown
}

// runInformer runs informer until ctx ends, logging each failed watch with warn (the
// informer retries, and the mapping in force stays), and waits for its first list. The
// returned channel is closed once the informer has stopped.
func runInformer(ctx context.Context, informer cache.SharedIndexInformer, what string, warn func(error)) (<-chan struct{}, error) {
	if err := informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		warn(err)
	}); err != nil {
		return nil, fmt.Errorf("watch %s: %w", what, err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		informer.RunWithContext(ctx)
	}()
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		<-stopped
		return nil, fmt.Errorf("watch %s: stopped before the first list completed", what)
	}
	return stopped, nil
}
