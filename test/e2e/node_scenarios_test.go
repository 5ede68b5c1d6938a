//go:build e2enode

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// 1. `kubectl apply -k` of the admin's overlay; the pod becomes Ready through its own probes,
// and the server really runs as the manifests say: UID/GID 65532, no capabilities, no new
// privileges, seccomp, a read-only root filesystem, the state directory from the node mounted
// read-only, and the ServiceAccount token with which it read its mapping (readiness waits for it).
func podReady(n *node) {
	n.writeOverlay(firstTag)
	n.mustKubectl("", "apply", "-k", n.overlay)
	n.rolloutStatus()
	pod := n.readyPod(2 * time.Minute)
	if len(pod.Status.InitContainerStatuses) != 1 || pod.Status.InitContainerStatuses[0].State.Terminated == nil ||
		pod.Status.InitContainerStatuses[0].State.Terminated.ExitCode != 0 {
		n.t.Fatalf("the init container did not complete: %+v", pod.Status.InitContainerStatuses)
	}
	pid, err := serverProcess()
	if err != nil {
		n.t.Fatal(err)
	}
	st, err := procStatus(pid)
	if err != nil {
		n.t.Fatal(err)
	}
	for field, want := range map[string]string{
		"Uid": "65532 65532 65532 65532", "Gid": "65532 65532 65532 65532",
		"CapEff": "0000000000000000", "CapPrm": "0000000000000000", "CapBnd": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2",
	} {
		if st[field] != want {
			n.t.Errorf("server process %s = %q, want %q", field, st[field], want)
		}
	}
	mounts, err := mountOptions(pid)
	if err != nil {
		n.t.Fatal(err)
	}
	for mp, want := range map[string]string{"/": "ro", "/var/lib/oidc-authenticator": "ro", "/etc/oidc-authenticator": "ro",
		"/var/run/secrets/kubernetes.io/serviceaccount": "ro", "/var/lib/oidc-authenticator/cache": "rw"} {
		opts, ok := mounts[mp]
		if !ok {
			n.t.Errorf("%s is not mounted in the server container", mp)
		} else if !slices.Contains(strings.Split(opts, ","), want) {
			n.t.Errorf("%s is mounted %s, want %s", mp, opts, want)
		}
	}
	// Its mapping source answered through the Kubernetes API with the pod's own token (the log
	// is written in batches, then copied to the node's file by containerd: poll).
	n.eventually(30*time.Second, "the pod's log mentions its mapping ConfigMap", func() error {
		if log := n.podLog(pod); !strings.Contains(log, "oidc-auth") {
			return fmt.Errorf("log:\n%s", log)
		}
		return nil
	})
}

// 2. A Dex user's id_token reaches kube-apiserver, a static pod set up as docs/install.md's step
// 2 says, which sees no file of the state directory but its kubeconfig and asks the pod (the
// only webhook on the node): kubectl auth whoami shows the user and the groups from the token,
// and the pod's log has the decision (never the token).
func whoamiThroughPod(n *node) {
	apiPID, err := n.cp.apiserverPID()
	if err != nil {
		n.t.Fatal(err)
	}
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/root/var/lib/oidc-authenticator", apiPID))
	if err != nil {
		n.t.Fatal(err)
	}
	var seen []string
	for _, e := range entries {
		seen = append(seen, e.Name())
	}
	if !slices.Equal(seen, []string{"apiserver-webhook-kubeconfig.yaml"}) {
		n.t.Errorf("kube-apiserver's pod sees %q in /var/lib/oidc-authenticator, want only the kubeconfig", seen)
	}
	tok, err := n.dex.PasswordGrant(n.ctx(), "alice@example.com", "alice-password")
	if err != nil {
		n.t.Fatal(err)
	}
	n.aliceLogsIn(time.Minute)
	out, err := kubectl(n.t, n.bins, n.user, "", "--token", tok.IDToken, "auth", "whoami")
	if err != nil || !strings.Contains(out, "alice@example.com") {
		n.t.Fatalf("kubectl auth whoami: %v\n%s", err, out)
	}
	pod := n.readyPod(time.Minute)
	var log string
	n.eventually(30*time.Second, "the pod logs its decision for alice", func() error {
		if log = n.podLog(pod); !strings.Contains(log, `"username":"alice@example.com"`) {
			return fmt.Errorf("log:\n%s", log)
		}
		return nil
	})
	if strings.Contains(log, tok.IDToken) || strings.Contains(log, strings.Split(tok.IDToken, ".")[2]) {
		n.t.Error("the pod logged a token")
	}
	// An unverified email is refused by the pod: bob's email_verified is false.
	if _, err := n.login("bob@example.com"); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		n.t.Errorf("bob (email not verified) must be Unauthorized, got %v", err)
	}
}

// 3. The admin maps identities with the example file the docs point to; a ClusterRoleBinding
// to a group it grants (dev-team, for Dex's developers) lets alice list pods.
func nodeRBAC(n *node) {
	n.mustKubectl("", "apply", "-f", filepath.Join(n.root, "manifests", "mapping-example.yaml"))
	listPods := func() (string, error) {
		tok, err := n.dex.PasswordGrant(n.ctx(), "alice@example.com", "alice-password")
		if err != nil {
			return "", err
		}
		return kubectl(n.t, n.bins, n.user, "", "--token", tok.IDToken, "get", "pods", "-n", "default")
	}
	if out, err := listPods(); err == nil || !strings.Contains(out, "Forbidden") {
		n.t.Fatalf("without a binding alice must be Forbidden, got %v:\n%s", err, out)
	}
	// kube-controller-manager runs here, so the aggregated view role is complete.
	n.mustKubectl("", "create", "clusterrolebinding", "dev-team-view", "--clusterrole=view", "--group=dev-team")
	n.eventually(time.Minute, "alice lists pods through dev-team", func() error {
		out, err := listPods()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	n.aliceLogsIn(time.Minute, "dev-team", "cluster-admins")
}

// 4. kubectl patch of the mapping ConfigMap: the pod's watch (with its own RBAC) applies it to
// the next review, and it records the Event that says which version is in force.
func nodeConfigMapEdit(n *node) {
	who, err := n.login("carol@example.com")
	if err != nil {
		n.t.Fatal(err)
	}
	if slices.Contains(who.Groups, "node-editors") {
		n.t.Fatalf("carol has node-editors before the edit: %v", who.Groups)
	}
	n.mustKubectl("", "-n", "kube-system", "patch", "configmap", "oidc-auth", "--type=merge",
		"-p", `{"data":{"mapUsers":"- email: carol@example.com\n  groups: [node-editors]\n"}}`)
	rv := strings.TrimSpace(n.mustKubectl("", "-n", "kube-system", "get", "configmap", "oidc-auth", "-o", "jsonpath={.metadata.resourceVersion}"))
	n.eventually(time.Minute, "carol gets node-editors", func() error {
		who, err := n.login("carol@example.com")
		if err != nil {
			return err
		}
		if !slices.Contains(who.Groups, "node-editors") {
			return fmt.Errorf("groups %q", who.Groups)
		}
		return nil
	})
	n.eventually(time.Minute, "the MappingLoaded Event for the edit", func() error {
		out, err := n.kubectl("", "-n", "kube-system", "get", "events", "--field-selector", "involvedObject.name=oidc-auth,reason=MappingLoaded", "-o", "jsonpath={.items[*].message}")
		if err != nil || !strings.Contains(out, rv) {
			return fmt.Errorf("events %q (want resourceVersion %s): %v", out, rv, err)
		}
		return nil
	})
}

// 5. kubectl rollout restart: a new pod replaces the old one (its initContainer keeps the keys
// kube-apiserver trusts) in a surge, with logins going on all along: not one fails.
func rolloutRestart(n *node) {
	old := n.readyPod(time.Minute)
	var pod podInfo
	n.withLogins("rollout restart", func() {
		n.mustKubectl("", "-n", "kube-system", "rollout", "restart", "daemonset/oidc-authenticator")
		n.rolloutStatus()
		pod = n.readyPod(2*time.Minute, old.Metadata.UID)
	})
	n.aliceLogsIn(time.Minute, "dev-team")
	if pod.Status.ContainerStatuses[0].RestartCount != 0 {
		n.t.Errorf("the new pod's server restarted %d times", pod.Status.ContainerStatuses[0].RestartCount)
	}
	// The old pod kept the issuer's keys and the mapping in the state directory's cache/, and
	// the new one started from them (docs/operations.md, "What survives a restart").
	n.eventually(30*time.Second, "the new pod starts from what the old one kept", func() error {
		log := n.podLog(pod)
		for _, want := range []string{"issuer ready with the keys of the previous run", "serving the identity mapping of the previous run"} {
			if !strings.Contains(log, want) {
				return fmt.Errorf("no %q in its log:\n%s", want, log)
			}
		}
		return nil
	})
}

// 6. The admin pins a second tag (another build, another version) in the overlay and applies
// it: both containers change image, the new binary runs, the rollout completes, and no login
// fails meanwhile.
func imageChange(n *node) {
	old := n.readyPod(time.Minute)
	before, err := runningVersion()
	if err != nil {
		n.t.Fatal(err)
	}
	n.writeOverlay(secondTag)
	var pod podInfo
	n.withLogins("image change", func() {
		n.mustKubectl("", "apply", "-k", n.overlay)
		n.rolloutStatus()
		pod = n.readyPod(2*time.Minute, old.Metadata.UID)
	})
	want := n.imageRepo + ":" + secondTag
	if pod.Spec.InitContainers[0].Image != want || pod.Spec.Containers[0].Image != want {
		n.t.Errorf("images %q and %q, want %q", pod.Spec.InitContainers[0].Image, pod.Spec.Containers[0].Image, want)
	}
	if !strings.HasSuffix(pod.Status.ContainerStatuses[0].Image, ":"+secondTag) {
		n.t.Errorf("running image %q", pod.Status.ContainerStatuses[0].Image)
	}
	if after, err := runningVersion(); err != nil || after != "oidc-authenticator "+secondTag || after == before {
		n.t.Errorf("the server runs %q (%v), before %q: want the second build, oidc-authenticator %s", after, err, before, secondTag)
	}
	n.aliceLogsIn(time.Minute, "dev-team")
}

// 7. /metrics from the node's metrics listener, as a Prometheus on the host network would: the issuer is
// ready, the mapping loaded, and a login moves the counter of allowed reviews.
func scrapeMetrics(n *node) {
	before, err := n.scrape()
	if err != nil {
		n.t.Fatal(err)
	}
	if v := sum(before, "oidc_authenticator_issuer_ready", `issuer="`+n.dex.IssuerURL+`"`); v != 1 {
		n.t.Errorf("oidc_authenticator_issuer_ready for Dex = %v, want 1", v)
	}
	if v := sum(before, "oidc_authenticator_mapping_reloads_total", `result="success"`); v < 1 {
		n.t.Errorf("oidc_authenticator_mapping_reloads_total{result=success} = %v", v)
	}
	allowed := sum(before, "oidc_authenticator_tokenreview_requests_total", `result="allowed"`)
	n.aliceLogsIn(time.Minute)
	after, err := n.scrape()
	if err != nil {
		n.t.Fatal(err)
	}
	if got := sum(after, "oidc_authenticator_tokenreview_requests_total", `result="allowed"`); got <= allowed {
		n.t.Errorf("allowed reviews %v -> %v after a login", allowed, got)
	}
	if sum(after, "process_resident_memory_bytes") <= 0 || sum(after, "go_goroutines") <= 0 {
		n.t.Error("no process or Go runtime metrics")
	}
}

// 8. kubectl delete pod: the DaemonSet recreates it and logins recover, with kube-apiserver
// left as it was (same process, never restarted).
func podDeleted(n *node) {
	old := n.readyPod(time.Minute)
	apiPID, err := n.cp.apiserverPID()
	if err != nil {
		n.t.Fatal(err)
	}
	n.mustKubectl("", "-n", "kube-system", "delete", "pod", old.Metadata.Name, "--wait=false")
	n.readyPod(3*time.Minute, old.Metadata.UID)
	n.aliceLogsIn(2*time.Minute, "dev-team")
	if now, err := n.cp.apiserverPID(); err != nil || now != apiPID {
		n.t.Errorf("kube-apiserver was restarted: pid %d, now %d (%v)", apiPID, now, err)
	}
}
