package mapping

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// ConfigMapSetSource watches the ConfigMaps of one namespace that a label selector matches,
// with a client-go informer restricted to them, and delivers them as one mapping: their
// entries merged in the order of the ConfigMaps' names (Snapshot.Parts). A mapping too large
// for one ConfigMap (1 MiB) is split across several this way.
//
// Every change to any of them delivers the whole set again, as one version: a version that
// is invalid anywhere is refused as a whole, and an Event on each ConfigMap with a problem
// says why. No matching ConfigMap at all is delivered as Deleted.
type ConfigMapSetSource struct {
	Client    typedcorev1.CoreV1Interface
	Namespace string
	// Selector is a label selector, e.g. oidc-authenticator.io/mapping=true.
	Selector string
	Logger   *slog.Logger

	mu       sync.Mutex
	recorder record.EventRecorder
	current  []*corev1.ConfigMap // the set last delivered, in name order, for Events
}

func (c *ConfigMapSetSource) String() string {
	return fmt.Sprintf("ConfigMaps %s/{%s}", c.Namespace, c.Selector)
}

// Run delivers the set now and after every change until ctx ends.
func (c *ConfigMapSetSource) Run(ctx context.Context, update func(Snapshot)) error {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	recorder, stop := newRecorder(ctx, c.Client, c.Namespace)
	defer stop()
	c.mu.Lock()
	c.recorder = recorder
	c.mu.Unlock()

	selector, err := labels.Parse(c.Selector)
	if err != nil {
		return fmt.Errorf("watch %s: the label selector: %w", c, err)
	}
	configMaps := c.Client.ConfigMaps(c.Namespace)
	// A client that cannot stream the initial list of a watch (a fake one) says so, and is
	// listed instead.
	informer := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = c.Selector
			return configMaps.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = c.Selector
			return configMaps.Watch(ctx, o)
		},
	}, c.Client), &corev1.ConfigMap{}, 0, cache.Indexers{})
	// Every event marks the set changed; the loop below delivers it whole, once the first
	// list is complete, so that a partial set is never delivered.
	changed := make(chan struct{}, 1)
	mark := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    mark,
		UpdateFunc: func(_, obj any) { mark(obj) },
		DeleteFunc: mark,
	}); err != nil {
		return fmt.Errorf("watch %s: %w", c, err)
	}
	stopped, err := runInformer(ctx, informer, c.String(), func(err error) {
		log.Warn("watching the mapping ConfigMaps failed; retrying, the mapping in force stays", "configMaps", c.String(), "err", err)
	})
	if err != nil {
		return err
	}
	defer func() { <-stopped }()
	for {
		update(c.snapshot(informer.GetStore().List(), selector))
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// snapshot makes the ConfigMaps of objs that selector matches, sorted by name, one snapshot,
// and remembers them for Events.
func (c *ConfigMapSetSource) snapshot(objs []any, selector labels.Selector) Snapshot {
	var cms []*corev1.ConfigMap
	for _, o := range objs {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Namespace == c.Namespace && selector.Matches(labels.Set(cm.Labels)) {
			cms = append(cms, cm)
		}
	}
	slices.SortFunc(cms, func(a, b *corev1.ConfigMap) int { return strings.Compare(a.Name, b.Name) })
	c.mu.Lock()
	c.current = cms
	c.mu.Unlock()
	if len(cms) == 0 {
		return Snapshot{Deleted: true}
	}
	return setSnapshot(cms)
}

// setSnapshot is the snapshot of ConfigMaps in name order. Its version is "set-" and the first
// 12 hex digits of the SHA-256 of their names and resourceVersions: it changes whenever one
// of them changes, joins or leaves.
func setSnapshot(cms []*corev1.ConfigMap) Snapshot {
	h := sha256.New()
	parts := make([]Part, len(cms))
	for i, cm := range cms {
		fmt.Fprintf(h, "%s\x00%s\x00", cm.Name, cm.ResourceVersion)
		parts[i] = Part{Name: cm.Namespace + "/" + cm.Name, Data: cm.Data, BinaryData: binaryDataKeys(cm)}
	}
	return Snapshot{Parts: parts, Version: "set-" + hex.EncodeToString(h.Sum(nil))[:12]}
}

// Event records the outcome of a version: when it was refused, a Warning on each ConfigMap
// with a problem, listing them; when it was accepted, a Normal Event on each ConfigMap.
func (c *ConfigMapSetSource) Event(refused error) {
	c.mu.Lock()
	cms, rec := c.current, c.recorder
	c.mu.Unlock()
	if rec == nil {
		return
	}
	if refused == nil {
		for _, cm := range cms {
			rec.Eventf(cm, corev1.EventTypeNormal, "MappingLoaded",
				"resourceVersion %s is in force, with the other ConfigMaps labelled %s (%d in all)", cm.ResourceVersion, c.Selector, len(cms))
		}
		return
	}
	var inv *InvalidError
	if !errors.As(refused, &inv) {
		return
	}
	byConfigMap := map[string][]string{}
	for _, p := range inv.Problems {
		byConfigMap[p.ConfigMap] = append(byConfigMap[p.ConfigMap], p.Field+": "+p.Detail)
	}
	for _, cm := range cms {
		problems := byConfigMap[cm.Namespace+"/"+cm.Name]
		if len(problems) == 0 {
			continue
		}
		rec.Eventf(cm, corev1.EventTypeWarning, "MappingRejected",
			"resourceVersion %s refused, and with it the new version of every ConfigMap labelled %s; the previous mapping stays in force: invalid identity mapping (%d problems): %s",
			cm.ResourceVersion, c.Selector, len(problems), strings.Join(problems, "; "))
	}
}
