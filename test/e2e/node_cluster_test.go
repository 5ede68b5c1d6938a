//go:build e2enode

package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// The real node: the control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler) as processes on loopback, as on a kubeadm node before its static pods are
// considered, and a kubelet running pods through containerd and runc. Everything runs as root
// on this machine; nothing listens beyond 127.0.0.1 and no pod but the DaemonSet's (host
// network) runs, so the CNI bridge is configured but never created.

const nodeName = "e2e-node"

// nodeBins are the node's programs besides the ones findBins locates.
type nodeBins struct {
	kubelet, controllerManager, scheduler, containerd, ctr, runc string
}

func findNodeBins(root string) (nodeBins, error) {
	n := nodeBins{
		kubelet:           envOr("KUBELET_BIN", filepath.Join(root, "bin", "kubelet")),
		controllerManager: envOr("KUBE_CONTROLLER_MANAGER_BIN", filepath.Join(root, "bin", "kube-controller-manager")),
		scheduler:         envOr("KUBE_SCHEDULER_BIN", filepath.Join(root, "bin", "kube-scheduler")),
		containerd:        "containerd",
		ctr:               "ctr",
		runc:              "runc",
	}
	for _, p := range []*string{&n.kubelet, &n.controllerManager, &n.scheduler, &n.containerd, &n.ctr, &n.runc} {
		full, err := exec.LookPath(*p)
		if err != nil {
			return n, fmt.Errorf("%s is missing (run `make e2e-node`, which builds or installs it): %w", *p, err)
		}
		*p = full
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		return n, fmt.Errorf("the CNI plugins are missing (apt-get install containernetworking-plugins; `make e2e-node` does): %w", err)
	}
	return n, nil
}

// controlPlane is kube-apiserver with the credentials of every component.
type controlPlane struct {
	api        *apiserver
	saKey      string
	tokens     map[string]string // component -> static bearer token
	kubeconfig map[string]string // component -> kubeconfig path
}

// startControlPlane starts kube-apiserver with the three flags docs/install.md adds (step 2),
// then kube-controller-manager and kube-scheduler.
func startControlPlane(b bins, nb nodeBins, dir, etcdURL, webhookKubeconfig string, procs *[]*proc) (*controlPlane, error) {
	adir := filepath.Join(dir, "apiserver")
	if err := os.MkdirAll(adir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	cp := &controlPlane{saKey: filepath.Join(adir, "sa.key"), tokens: map[string]string{}, kubeconfig: map[string]string{}}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(cp.saKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	saPub := filepath.Join(adir, "sa.pub")
	if err := os.WriteFile(saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return nil, err
	}
	// Static tokens for the components (a kubeadm cluster uses client certificates; the
	// authorizers only look at the names and groups).
	identities := []struct{ who, user, groups string }{
		{"admin", "e2e-admin", "system:masters"},
		{"kubelet", "system:node:" + nodeName, "system:nodes"},
		{"kube-controller-manager", "system:kube-controller-manager", "system:masters"},
		{"kube-scheduler", "system:kube-scheduler", "system:masters"},
	}
	var csv strings.Builder
	for _, id := range identities {
		tok := id.who + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		cp.tokens[id.who] = tok
		fmt.Fprintf(&csv, "%s,%s,%s,\"%s\"\n", tok, id.user, id.user, id.groups)
	}
	tokens := filepath.Join(adir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(csv.String()), 0o600); err != nil {
		return nil, err
	}
	certDir := filepath.Join(adir, "certs")
	p, err := startProc("kube-apiserver", filepath.Join(adir, "kube-apiserver.log"), b.apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port), "--endpoint-reconciler-type=none",
		"--cert-dir="+certDir, "--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+cp.saKey,
		"--token-auth-file="+tokens,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=false",
		// docs/install.md, step 2, verbatim but for the state directory's path:
		"--authentication-token-webhook-config-file="+webhookKubeconfig,
		"--authentication-token-webhook-version=v1",
		"--authentication-token-webhook-cache-ttl=30s",
	)
	if err != nil {
		return nil, err
	}
	*procs = append(*procs, p)
	cp.api = &apiserver{proc: p, url: "https://127.0.0.1:" + strconv.Itoa(port), adminToken: cp.tokens["admin"], dir: adir,
		caFile: filepath.Join(certDir, "apiserver.crt")}
	if err := waitHTTP(cp.api.url+"/readyz", http.Header{"Authorization": {"Bearer " + cp.tokens["admin"]}}, 120*time.Second, p); err != nil {
		return nil, fmt.Errorf("kube-apiserver: %w\n%s", err, p.tail(30))
	}
	for who, tok := range cp.tokens {
		path := filepath.Join(dir, who+".kubeconfig")
		if err := cp.api.kubeconfig(path, map[string]any{"token": tok}); err != nil {
			return nil, err
		}
		cp.kubeconfig[who] = path
	}

	kcmPort, err := freePort()
	if err != nil {
		return nil, err
	}
	kcm, err := startProc("kube-controller-manager", filepath.Join(dir, "kube-controller-manager.log"), nb.controllerManager,
		"--kubeconfig="+cp.kubeconfig["kube-controller-manager"],
		"--authentication-kubeconfig="+cp.kubeconfig["kube-controller-manager"],
		"--authorization-kubeconfig="+cp.kubeconfig["kube-controller-manager"],
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
		"--cert-dir="+filepath.Join(dir, "kcm-certs"),
		"--leader-elect=false",
		// What the pods' ServiceAccount volume trusts (kube-root-ca.crt).
		"--root-ca-file="+cp.api.caFile,
		"--service-account-private-key-file="+cp.saKey,
		"--use-service-account-credentials=false",
	)
	if err != nil {
		return nil, err
	}
	*procs = append(*procs, kcm)
	if err := waitHTTP("https://127.0.0.1:"+strconv.Itoa(kcmPort)+"/healthz", nil, 90*time.Second, kcm); err != nil {
		return nil, fmt.Errorf("kube-controller-manager: %w\n%s", err, kcm.tail(30))
	}
	schedPort, err := freePort()
	if err != nil {
		return nil, err
	}
	sched, err := startProc("kube-scheduler", filepath.Join(dir, "kube-scheduler.log"), nb.scheduler,
		"--kubeconfig="+cp.kubeconfig["kube-scheduler"],
		"--authentication-kubeconfig="+cp.kubeconfig["kube-scheduler"],
		"--authorization-kubeconfig="+cp.kubeconfig["kube-scheduler"],
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--cert-dir="+filepath.Join(dir, "scheduler-certs"),
		"--leader-elect=false",
	)
	if err != nil {
		return nil, err
	}
	*procs = append(*procs, sched)
	if err := waitHTTP("https://127.0.0.1:"+strconv.Itoa(schedPort)+"/healthz", nil, 90*time.Second, sched); err != nil {
		return nil, fmt.Errorf("kube-scheduler: %w\n%s", err, sched.tail(30))
	}
	return cp, nil
}

// containerdConfig is the configuration ../shared recipes measured on this kind of machine:
// restrict_oom_score_adj because root here lacks CAP_SYS_RESOURCE (without it every sandbox
// fails with "can't get final child's PID from pipe: EOF"), cgroupfs because PID 1 is not systemd.
const containerdConfig = `version = 2
root = "{{dir}}/root"
state = "{{dir}}/state"
[grpc]
  address = "{{sock}}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:3.10"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{{dir}}/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{{runc}}"
`

// The node's pod network, which makes the runtime report NetworkReady. Only pods without
// hostNetwork would use it, and none runs here.
const cniConfig = `{
  "cniVersion": "1.0.0",
  "name": "e2e-node",
  "plugins": [
    {"type": "bridge", "bridge": "oa-e2e0", "isGateway": false, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.77.0/24"}]]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

// startContainerd starts containerd with its own root, state and socket under dir, and
// imports the images (tarballs written by `make image` and `make pause-image`).
func startContainerd(nb nodeBins, dir string, images []string, procs *[]*proc) (string, error) {
	cdir := filepath.Join(dir, "containerd")
	for _, d := range []string{cdir, filepath.Join(cdir, "net.d")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", err
		}
	}
	sock := filepath.Join(cdir, "containerd.sock")
	cfg := strings.NewReplacer("{{dir}}", cdir, "{{sock}}", sock, "{{runc}}", nb.runc).Replace(containerdConfig)
	if err := os.WriteFile(filepath.Join(cdir, "config.toml"), []byte(cfg), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(cdir, "net.d", "10-e2e.conflist"), []byte(cniConfig), 0o600); err != nil {
		return "", err
	}
	p, err := startProc("containerd", filepath.Join(dir, "containerd.log"), nb.containerd, "--config", filepath.Join(cdir, "config.toml"))
	if err != nil {
		return "", err
	}
	*procs = append(*procs, p)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if out, err := exec.Command(nb.ctr, "-a", sock, "version").CombinedOutput(); err == nil {
			break
		} else if time.Now().After(deadline) || p.exited() {
			return "", fmt.Errorf("containerd did not answer: %v: %s\n%s", err, out, p.tail(20))
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, img := range images {
		if out, err := exec.Command(nb.ctr, "-a", sock, "-n", "k8s.io", "images", "import", img).CombinedOutput(); err != nil {
			return "", fmt.Errorf("ctr images import %s: %v\n%s", img, err, out)
		}
	}
	return sock, nil
}

// startKubelet runs the kubelet against containerd, registering the node with the
// control-plane taint (kubeadm adds the label afterwards through the API, as the kubelet may
// not set node-role labels itself).
func startKubelet(nb nodeBins, dir, kubeconfig, sock string, procs *[]*proc) (*proc, error) {
	kdir := filepath.Join(dir, "kubelet")
	if err := os.MkdirAll(kdir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	healthz, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
		"address": "127.0.0.1", "port": port, "readOnlyPort": 0,
		"healthzBindAddress": "127.0.0.1", "healthzPort": healthz,
		"containerRuntimeEndpoint": "unix://" + sock,
		"cgroupDriver":             "cgroupfs",
		"failSwapOn":               false,
		// Root here may not lower its oom_score_adj (no CAP_SYS_RESOURCE).
		"oomScoreAdj": 0,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": false},
		},
		"authorization": map[string]any{"mode": "AlwaysAllow"},
		"registerWithTaints": []any{
			map[string]any{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
		},
		// A busy shared disk must not evict the pod under test.
		"evictionHard":                map[string]any{"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"syncFrequency":               "10s",
		"fileCheckFrequency":          "10s",
		"serializeImagePulls":         false,
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(kdir, "config.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return nil, err
	}
	p, err := startProc("kubelet", filepath.Join(dir, "kubelet.log"), nb.kubelet,
		"--config="+cfgPath, "--kubeconfig="+kubeconfig,
		"--root-dir="+filepath.Join(kdir, "root"), "--cert-dir="+filepath.Join(kdir, "pki"),
		"--hostname-override="+nodeName, "--v=1")
	if err != nil {
		return nil, err
	}
	*procs = append(*procs, p)
	if err := waitHTTP("http://127.0.0.1:"+strconv.Itoa(healthz)+"/healthz", nil, 120*time.Second, p); err != nil {
		return nil, fmt.Errorf("kubelet: %w\n%s", err, p.tail(40))
	}
	return p, nil
}

// portFree reports whether 127.0.0.1:port can be listened on.
func portFree(port int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	return ln.Close()
}
