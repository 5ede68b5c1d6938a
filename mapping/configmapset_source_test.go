package mapping

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

const setLabel = "oidc-authenticator.io/mapping"

func setConfigMap(name, rv string, labelled bool, users string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: name, ResourceVersion: rv},
		Data:       map[string]string{KeyUsers: users},
	}
	if labelled {
		cm.Labels = map[string]string{setLabel: "true"}
	}
	return cm
}

// waitEvent waits until the fake API holds an Event of reason on the ConfigMap name, and
// returns its message.
func waitEvent(t *testing.T, client *fake.Clientset, name, reason string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		events, err := client.CoreV1().Events("kube-system").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events.Items {
			if e.InvolvedObject.Name == name && e.Reason == reason {
				return e.Message
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s Event on %s; events: %+v", reason, name, events.Items)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The ConfigMaps a label selector matches are one mapping, merged in name order; an invalid
// one refuses the new version of the whole set (the last good one stays, an Event on the
// broken ConfigMap says why); none left is a deleted mapping.
func TestConfigMapSetSource(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(
		setConfigMap("mapping-b", "11", true, "- subject: bob-sub\n  username: bob\n"),
		setConfigMap("mapping-a", "10", true, "- subject: alice-sub\n  username: alice\n"),
		setConfigMap("unrelated", "12", false, "- subject: alice-sub\n  username: mallory\n"),
	)
	src := &ConfigMapSetSource{Client: listingCore{client.CoreV1()}, Namespace: "kube-system", Selector: setLabel + "=true"}
	if src.String() != "ConfigMaps kube-system/{"+setLabel+"=true}" {
		t.Errorf("String() = %q", src.String())
	}
	h := newHarness(t, false)
	h.store.opts.OnReload = func(r string) {
		if r == ReloadSuccess {
			src.Event(nil)
		}
	}
	h.store.opts.OnReject = func(_ Snapshot, err error) { src.Event(err) }
	snaps := make(chan Snapshot, 10)
	runSource(t, sourceFunc{src, func(s Snapshot) { h.store.Update(s); snaps <- s }})

	first := next(t, snaps, 10*time.Second)
	if len(first.Parts) != 2 || first.Parts[0].Name != "kube-system/mapping-a" || first.Parts[1].Name != "kube-system/mapping-b" || !strings.HasPrefix(first.Version, "set-") {
		t.Fatalf("first snapshot %+v; want mapping-a then mapping-b, not the unlabelled one", first)
	}
	if got := h.username(t); got != "alice" {
		t.Fatalf("username %q, want alice (mapping-a; the unlabelled ConfigMap is not read)", got)
	}
	waitEvent(t, client, "mapping-b", "MappingLoaded")

	// mapping-b now maps alice's subject too: the whole new version is refused.
	broken := setConfigMap("mapping-b", "13", true, "- subject: bob-sub\n  username: bob\n- subject: alice-sub\n  username: alice-again\n")
	if _, err := client.CoreV1().ConfigMaps("kube-system").Update(ctx, broken, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := next(t, snaps, 10*time.Second)
	for s.Version == first.Version { // the first set again (its two additions marked it twice)
		s = next(t, snaps, 10*time.Second)
	}
	if got := h.username(t); got != "alice" {
		t.Fatalf("after a broken edit: username %q, want the last good mapping's alice", got)
	}
	msg := waitEvent(t, client, "mapping-b", "MappingRejected")
	if !strings.Contains(msg, "mapUsers[1].subject") || !strings.Contains(msg, "mapUsers[0] of ConfigMap kube-system/mapping-a") {
		t.Errorf("the Event on mapping-b does not say what is wrong: %s", msg)
	}
	if ok, detail := h.store.Status(); !ok || !strings.Contains(detail, "refused") {
		t.Errorf("Status %v %q", ok, detail)
	}

	// Both deleted: the mapping is revoked.
	for _, name := range []string{"mapping-a", "mapping-b"} {
		if err := client.CoreV1().ConfigMaps("kube-system").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for s = next(t, snaps, 10*time.Second); !s.Deleted; s = next(t, snaps, 10*time.Second) {
		if len(s.Parts) != 1 {
			t.Fatalf("snapshot %+v while deleting", s)
		}
	}
	if got := h.username(t); got != "dex:alice@example.com" {
		t.Fatalf("after deletion: username %q, want the unmapped one", got)
	}
}

// listingCore is the fake clientset's core/v1 client, saying as the clientset does that it
// cannot stream the initial list of a watch, so that the informer lists.
type listingCore struct{ typedcorev1.CoreV1Interface }

func (listingCore) IsWatchListSemanticsUnSupported() bool { return true }

// sourceFunc runs a source with its own update function, whatever Run is given.
type sourceFunc struct {
	Source
	update func(Snapshot)
}

func (s sourceFunc) Run(ctx context.Context, _ func(Snapshot)) error {
	return s.Source.Run(ctx, s.update)
}
