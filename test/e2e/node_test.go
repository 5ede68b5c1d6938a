//go:build e2enode

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/oidc-authenticator/oidc-authenticator/test/dex"
)

// TestNode runs the DaemonSet of manifests/ on a real kubelet, exactly as docs/install.md
// tells an admin: `oidc-authenticator init` on the node, kube-apiserver's three flags,
// `kubectl apply -k` of an overlay that pins the image `make image` built, then each scenario
// of issue 14 through kubectl. Run it with `make e2e-node` (root; it installs containerd, runc
// and the CNI plugins with apt and builds kubelet and friends the first time).
func TestNode(t *testing.T) {
	began := time.Now()
	n := setUpNode(t)
	fmt.Printf("e2e: node ready (containerd, kubelet, kube-apiserver as its static pod, etcd, kube-controller-manager, kube-scheduler) in %.1fs\n", time.Since(began).Seconds())
	var outcomes []nodeOutcome
	t.Cleanup(func() {
		for _, o := range outcomes {
			verdict := "PASS"
			if !o.passed {
				verdict = "FAIL"
			}
			fmt.Printf("e2e: %-4s %-74s %6.1fs\n", verdict, o.name, o.took.Seconds())
		}
	})
	for i, sc := range nodeScenarios {
		start := time.Now()
		passed := t.Run(sc.name, func(t *testing.T) {
			n.t = t
			sc.run(n)
		})
		n.t = t
		outcomes = append(outcomes, nodeOutcome{name: "node " + sc.name, passed: passed, took: time.Since(start)})
		if !passed && i == 0 {
			break // nothing else can work without the pod
		}
	}
}

type nodeOutcome struct {
	name   string
	passed bool
	took   time.Duration
}

var nodeScenarios = []struct {
	name string
	run  func(*node)
}{
	{"1 pod Ready by its probes: securityContext, hostPath state, SA token", podReady},
	{"2 kubectl auth whoami: static-pod kube-apiserver -> the pod -> Dex", whoamiThroughPod},
	{"3 RBAC through a group of mapping-example.yaml", nodeRBAC},
	{"4 kubectl edit of the mapping ConfigMap changes the next review", nodeConfigMapEdit},
	{"5 kubectl rollout restart daemonset; logins keep working", rolloutRestart},
	{"6 image changed to a second tag by kustomize; logins keep working", imageChange},
	{"7 metrics scraped from the node as Prometheus would", scrapeMetrics},
	{"8 pod deleted: the DaemonSet recreates it, logins recover", podDeleted},
}

// node is the running cluster of one node.
type node struct {
	t         *testing.T
	root, dir string
	bins      bins
	nb        nodeBins
	dex       *dex.Server
	cp        *controlPlane
	state     string // the webhook's state directory on the node (hostPath)
	overlay   string // the admin's kustomization overlay
	imageRepo string
	user      string // kubeconfig without credentials; tokens come with --token
	sock      string // containerd
	podUIDs   map[string]bool
}

const (
	webhookPort = 21362 // the shipped manifests' port
	metricsPort = 21363 // the shipped configuration's metrics listener
	firstTag    = "e2e-node"
	secondTag   = "e2e-node-2" // make e2e-node builds it with VERSION=e2e-node-2
)

func setUpNode(t *testing.T) *node {
	if os.Geteuid() != 0 {
		t.Fatal("the node test runs containers: run it as root (make e2e-node)")
	}
	root, b := repoBins(t)
	nb, err := findNodeBins(root)
	if err != nil {
		t.Fatal(err)
	}
	imageTar, image2Tar, pauseTar, apiserverTar := os.Getenv("IMAGE_TAR"), os.Getenv("IMAGE2_TAR"), os.Getenv("PAUSE_TAR"), os.Getenv("APISERVER_IMAGE_TAR")
	apiserverImage := os.Getenv("APISERVER_IMAGE")
	if imageTar == "" || image2Tar == "" || pauseTar == "" || apiserverTar == "" || apiserverImage == "" {
		t.Fatal("IMAGE_TAR, IMAGE2_TAR, PAUSE_TAR, APISERVER_IMAGE_TAR and APISERVER_IMAGE name the images (make e2e-node builds them)")
	}
	for _, port := range []int{webhookPort, metricsPort} {
		if err := portFree(port); err != nil {
			t.Fatalf("the manifests' port 127.0.0.1:%d is taken on this machine: %v", port, err)
		}
	}
	// Short: unix socket paths (containerd's, the kubelet's) must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "oa-node-")
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, root: root, dir: dir, bins: b, nb: nb, imageRepo: envOr("IMAGE_REPO", "ghcr.io/oidc-authenticator/oidc-authenticator"), podUIDs: map[string]bool{}}
	var procs []*proc
	t.Cleanup(func() {
		n.tearDown(procs)
		if t.Failed() {
			for _, p := range procs {
				t.Logf("%s log tail:\n%s", p.name, p.tail(15))
			}
			if logs, _ := filepath.Glob("/var/log/pods/kube-system_kube-apiserver-" + nodeName + "_*/kube-apiserver/*.log"); len(logs) > 0 {
				b, _ := os.ReadFile(logs[len(logs)-1])
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("kube-apiserver (static pod) log tail:\n%s", strings.Join(lines[max(0, len(lines)-20):], "\n"))
			}
			fmt.Printf("e2e: logs of every component kept in %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	})

	etcd, etcdURL, err := startEtcd(b, dir)
	if err != nil {
		t.Fatal(err)
	}
	procs = append(procs, etcd)
	users := append(dex.DefaultUsers(), dex.User{Email: "carol@example.com", Password: "carol-password", Username: "carol", EmailVerified: true})
	d, err := dex.Start(context.Background(), dex.Options{Users: users, Dir: filepath.Join(dir, "dex")})
	if err != nil {
		t.Fatal(err)
	}
	n.dex = d
	t.Cleanup(func() { d.Stop() })

	// docs/install.md step 1: the state directory, owned by the pods' UID, and (1a) init on the node.
	n.state = filepath.Join(dir, "var-lib-oidc-authenticator")
	if err := os.MkdirAll(n.state, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(b.authenticator, "init", "--state-dir", n.state, "--hostname", "127.0.0.1",
		"--address", "127.0.0.1:"+strconv.Itoa(webhookPort)).CombinedOutput()
	if err != nil {
		t.Fatalf("oidc-authenticator init: %v\n%s", err, out)
	}
	if out, err := exec.Command("chown", "-R", "65532:65532", n.state).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // the pods' user walks through it to the hostPath
		t.Fatal(err)
	}

	// The images are in the node's store as if pulled: kube-apiserver's, the one pinned first,
	// and the build of another version under a second tag (scenario 6).
	sock, err := startContainerd(nb, dir, []string{pauseTar, apiserverTar, imageTar, image2Tar}, &procs)
	if err != nil {
		t.Fatal(err)
	}
	n.sock = sock
	// Step 2: kube-apiserver's static pod with the flags and the mount; the kubelet starts it,
	// then the rest of the control plane.
	staticPods := filepath.Join(dir, "static-pods")
	cp, err := prepareControlPlane(root, dir, etcdURL, staticPods, n.state, apiserverImage)
	if err != nil {
		t.Fatal(err)
	}
	n.cp = cp
	n.user = filepath.Join(dir, "user.kubeconfig")
	if err := cp.api.kubeconfig(n.user, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	kubelet, err := startKubelet(nb, dir, cp.kubeconfig["kubelet"], sock, staticPods, &procs)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.waitAPIServer(kubelet); err != nil {
		t.Fatalf("kube-apiserver (static pod): %v", err)
	}
	if err := startControllers(nb, dir, cp, &procs); err != nil {
		t.Fatal(err)
	}
	n.eventually(3*time.Minute, "node "+nodeName+" Ready", func() error {
		out, err := n.kubectl("", "get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil || strings.TrimSpace(out) != "True" {
			return fmt.Errorf("Ready=%q %v", out, err)
		}
		return nil
	})
	n.mustKubectl("", "label", "node", nodeName, "node-role.kubernetes.io/control-plane=")
	return n
}

// tearDown removes every container, stops the components in reverse order, and unmounts
// whatever the kubelet and containerd left mounted under the run's directory.
func (n *node) tearDown(procs []*proc) {
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		if p.name == "containerd" {
			n.removeContainers()
		}
		p.stop()
	}
	// containerd's shims outlive it: stop the ones serving this run's socket.
	if n.sock != "" {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if strings.Contains(string(cmdline), "containerd-shim") && strings.Contains(string(cmdline), n.sock) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	var under []string
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], n.dir+"/") {
			under = append(under, f[4])
		}
	}
	for i := len(under) - 1; i >= 0; i-- {
		_ = syscall.Unmount(under[i], syscall.MNT_DETACH)
	}
	for uid := range n.podUIDs {
		matches, _ := filepath.Glob("/var/log/pods/kube-system_oidc-authenticator-*_" + uid)
		for _, m := range matches {
			os.RemoveAll(m)
		}
	}
	if !n.t.Failed() {
		matches, _ := filepath.Glob("/var/log/pods/kube-system_kube-apiserver-" + nodeName + "_*")
		for _, m := range matches {
			os.RemoveAll(m)
		}
	}
}

// removeContainers kills and deletes every task and container of this run's containerd.
func (n *node) removeContainers() {
	if n.sock == "" {
		return
	}
	ctr := func(args ...string) string {
		out, _ := exec.Command(n.nb.ctr, append([]string{"-a", n.sock, "-n", "k8s.io"}, args...)...).CombinedOutput()
		return string(out)
	}
	tasks := strings.Fields(ctr("tasks", "ls", "-q"))
	for _, id := range tasks {
		ctr("tasks", "kill", "-a", "-s", "SIGKILL", id)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if !strings.Contains(ctr("tasks", "ls"), "RUNNING") {
			break
		}
	}
	for _, id := range tasks {
		ctr("tasks", "delete", "-f", id)
	}
	for _, id := range strings.Fields(ctr("containers", "ls", "-q")) {
		ctr("containers", "delete", id)
	}
}

func (n *node) kubectl(stdin string, args ...string) (string, error) {
	return kubectl(n.t, n.bins, n.cp.kubeconfig["admin"], stdin, args...)
}

func (n *node) mustKubectl(stdin string, args ...string) string {
	n.t.Helper()
	out, err := n.kubectl(stdin, args...)
	if err != nil {
		n.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (n *node) eventually(timeout time.Duration, what string, f func() error) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(time.Second)
	}
}

// writeOverlay is the admin's kustomization: the shipped manifests, the image pinned to a
// tag, the configuration for this cluster's issuer, and two node-specific settings.
func (n *node) writeOverlay(tag string) {
	n.t.Helper()
	n.overlay = filepath.Join(n.dir, "overlay")
	if err := os.MkdirAll(n.overlay, 0o755); err != nil {
		n.t.Fatal(err)
	}
	manifests, err := filepath.Rel(n.overlay, filepath.Join(n.root, "manifests"))
	if err != nil {
		n.t.Fatal(err)
	}
	kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %s
images:
- name: ghcr.io/oidc-authenticator/oidc-authenticator
  newName: %s
  newTag: %s
patches:
- path: config.yaml
- path: node.yaml
`, manifests, n.imageRepo, tag)
	// The shipped configuration with the placeholder issuer replaced by this Dex, as
	// docs/install.md step 3 tells.
	shipped, err := os.ReadFile(filepath.Join(n.root, "manifests", "config.yaml"))
	if err != nil {
		n.t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(shipped, &cm); err != nil {
		n.t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		n.t.Fatal(err)
	}
	jwt := cfg["jwt"].([]any)[0].(map[string]any)
	jwt["issuer"] = map[string]any{"url": n.dex.IssuerURL, "audiences": []string{"kubernetes"}, "certificateAuthority": string(n.dex.CAPEM)}
	body, err := yaml.Marshal(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	configPatch, _ := yaml.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "oidc-authenticator", "namespace": "kube-system"},
		"data":     map[string]any{"config.yaml": string(body)},
	})
	// The state directory lives in this run's directory instead of /var/lib/oidc-authenticator
	// (the container sees the same path), and, since this loopback-only node runs no
	// kube-proxy, the pod reaches kube-apiserver on the node's loopback at this cluster's
	// port, in place of the manifest's node address and 6443.
	nodePatch := fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: oidc-authenticator
  namespace: kube-system
spec:
  template:
    spec:
      volumes:
      - name: state
        hostPath:
          path: %s
      containers:
      - name: oidc-authenticator
        env:
        - name: KUBERNETES_SERVICE_HOST
          value: 127.0.0.1
          valueFrom: null
        - name: KUBERNETES_SERVICE_PORT
          value: "%s"
`, n.state, strings.TrimPrefix(n.cp.api.url, "https://127.0.0.1:"))
	for name, data := range map[string]string{"kustomization.yaml": kustomization, "config.yaml": string(configPatch), "node.yaml": nodePatch} {
		if err := os.WriteFile(filepath.Join(n.overlay, name), []byte(data), 0o644); err != nil {
			n.t.Fatal(err)
		}
	}
}

// podInfo is what the scenarios read of the DaemonSet's pod.
type podInfo struct {
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		InitContainers []struct{ Image string } `json:"initContainers"`
		Containers     []struct{ Image string } `json:"containers"`
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type, Status string
		} `json:"conditions"`
		InitContainerStatuses []struct {
			State struct {
				Terminated *struct {
					ExitCode int `json:"exitCode"`
				} `json:"terminated"`
			} `json:"state"`
		} `json:"initContainerStatuses"`
		ContainerStatuses []struct {
			Image        string `json:"image"`
			RestartCount int    `json:"restartCount"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

func (p podInfo) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// readyPod waits until the DaemonSet has exactly one pod, Ready, that is not one of skip.
func (n *node) readyPod(timeout time.Duration, skip ...string) podInfo {
	n.t.Helper()
	var pod podInfo
	n.eventually(timeout, "one Ready oidc-authenticator pod", func() error {
		out, err := n.kubectl("", "-n", "kube-system", "get", "pods", "-l", "app.kubernetes.io/name=oidc-authenticator", "-o", "json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		var list struct{ Items []podInfo }
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return err
		}
		if len(list.Items) != 1 {
			return fmt.Errorf("%d pods", len(list.Items))
		}
		pod = list.Items[0]
		n.podUIDs[pod.Metadata.UID] = true
		if slices.Contains(skip, pod.Metadata.UID) {
			return fmt.Errorf("still the old pod %s", pod.Metadata.Name)
		}
		if !pod.ready() {
			return fmt.Errorf("pod %s not Ready: %+v", pod.Metadata.Name, pod.Status)
		}
		return nil
	})
	return pod
}

// login gets a fresh id_token from Dex (a new token, so that no cache of kube-apiserver or of
// the webhook answers for it) and runs kubectl auth whoami with it.
func (n *node) login(email string) (whoamiResult, error) {
	tok, err := n.dex.PasswordGrant(context.Background(), email, strings.SplitN(email, "@", 2)[0]+"-password")
	if err != nil {
		return whoamiResult{}, fmt.Errorf("password grant for %s: %w", email, err)
	}
	out, err := kubectl(n.t, n.bins, n.user, "", "--token", tok.IDToken, "auth", "whoami", "-o", "json")
	if err != nil {
		return whoamiResult{}, fmt.Errorf("kubectl auth whoami: %v: %s", err, out)
	}
	var r struct {
		Status struct {
			UserInfo whoamiResult `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return whoamiResult{}, fmt.Errorf("whoami output: %v: %s", err, out)
	}
	return r.Status.UserInfo, nil
}

type whoamiResult struct {
	Username string   `json:"username"`
	Groups   []string `json:"groups"`
}

// aliceLogsIn waits until a fresh login of alice gives her identity with her groups from Dex.
func (n *node) aliceLogsIn(timeout time.Duration, wantGroups ...string) {
	n.t.Helper()
	n.eventually(timeout, "alice logs in through the pod", func() error {
		who, err := n.login("alice@example.com")
		if err != nil {
			return err
		}
		if who.Username != "alice@example.com" {
			return fmt.Errorf("username %q", who.Username)
		}
		for _, g := range append([]string{"oidc:developers", "oidc:admins", "system:authenticated"}, wantGroups...) {
			if !slices.Contains(who.Groups, g) {
				return fmt.Errorf("groups %q lack %q", who.Groups, g)
			}
		}
		return nil
	})
}

// serverProcess finds the pod's server process on the node by its command line.
func serverProcess() (int, error) {
	want := "server\x00--config=/etc/oidc-authenticator/config.yaml\x00"
	return findProcess("server processes of the pod", func(cmdline string) bool {
		return strings.HasPrefix(cmdline, "/usr/local/bin/oidc-authenticator\x00") && strings.Contains(cmdline, want)
	})
}

// findProcess returns the one process on the node whose command line (NUL-separated, as in
// /proc/PID/cmdline) matches; what names the processes for the error.
func findProcess(what string, match func(cmdline string) bool) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var found []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if match(string(cmdline)) {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("%d %s found (%v)", len(found), what, found)
	}
	return found[0], nil
}

// procStatus reads the fields of /proc/PID/status.
func procStatus(pid int) (map[string]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, _ := strings.Cut(s.Text(), ":")
		m[k] = strings.Join(strings.Fields(v), " ")
	}
	return m, s.Err()
}

// mountOptions returns the per-mount options of each mount point in the process's view.
func mountOptions(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 {
			m[f[4]] = f[5]
		}
	}
	return m, nil
}

// podLog is the server container's log as the kubelet wrote it on the node.
func (n *node) podLog(pod podInfo) string {
	files, _ := filepath.Glob(fmt.Sprintf("/var/log/pods/kube-system_%s_%s/oidc-authenticator/*.log", pod.Metadata.Name, pod.Metadata.UID))
	var all strings.Builder
	for _, f := range files {
		b, _ := os.ReadFile(f)
		all.Write(b)
	}
	return all.String()
}

// scrape fetches /metrics the way a Prometheus on the node's network does: plain HTTP to the
// metrics listener of the shipped configuration (server.metricsAddress, 127.0.0.1:21363).
func (n *node) scrape() (map[string]float64, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(metricsPort) + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		return nil, fmt.Errorf("%s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	series := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	return series, nil
}

// sum adds the series of one metric whose labels contain every one of labels.
func sum(series map[string]float64, metric string, labels ...string) float64 {
	var total float64
	for k, v := range series {
		if k != metric && !strings.HasPrefix(k, metric+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(k, l)
		}
		if ok {
			total += v
		}
	}
	return total
}

// rolloutStatus waits, as an admin would with kubectl rollout status, until the DaemonSet's
// rollout completes (kubectl is run again while it times out: each run is bounded to 60 s).
func (n *node) rolloutStatus() {
	n.t.Helper()
	n.eventually(5*time.Minute, "kubectl rollout status daemonset/oidc-authenticator", func() error {
		out, err := n.kubectl("", "-n", "kube-system", "rollout", "status", "daemonset/oidc-authenticator", "--timeout=45s")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}

func (n *node) ctx() context.Context { return context.Background() }

// runningVersion runs `version` with the binary of the pod's server process, as the node
// sees it (/proc/PID/exe): the first line, e.g. "oidc-authenticator v0.1.0".
func runningVersion() (string, error) {
	pid, err := serverProcess()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(fmt.Sprintf("/proc/%d/exe", pid), "version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("version: %v: %s", err, out)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return first, nil
}
