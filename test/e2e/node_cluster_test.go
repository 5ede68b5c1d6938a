//go:build e2enode

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
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

// The real node, as kubeadm builds one: a kubelet running pods through containerd and runc,
// kube-apiserver as its static pod (with docs/install.md's flags and mount), and etcd,
// kube-controller-manager and kube-scheduler as processes on loopback. Everything runs as root
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
	api        *apiserver // proc is nil: the kubelet runs kube-apiserver as a static pod
	port       int
	caFile     string            // the cluster CA (kube-apiserver's serving certificate, kube-root-ca.crt)
	saKey      string            // service-account signing key
	tokens     map[string]string // component -> static bearer token
	kubeconfig map[string]string // component -> kubeconfig path
}

// prepareControlPlane writes what kube-apiserver needs (a cluster CA and serving certificate,
// service-account keys, the components' static tokens and kubeconfigs) and its static pod
// manifest into manifestDir: a kubeadm-style pod whose oidc-authenticator flags, volume and mount
// are docs/install.md's step 2, read from the page itself.
func prepareControlPlane(root, dir, etcdURL, manifestDir, stateDir, image string) (*controlPlane, error) {
	adir := filepath.Join(dir, "apiserver")
	if err := os.MkdirAll(adir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cp := &controlPlane{port: port, saKey: filepath.Join(adir, "sa.key"), tokens: map[string]string{}, kubeconfig: map[string]string{}}
	caFile, certFile, keyFile, err := writeServingCert(adir)
	if err != nil {
		return nil, err
	}
	cp.caFile = caFile
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
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
	cp.api = &apiserver{url: "https://127.0.0.1:" + strconv.Itoa(port), adminToken: cp.tokens["admin"], dir: adir, caFile: caFile}
	for who, tok := range cp.tokens {
		path := filepath.Join(dir, who+".kubeconfig")
		if err := cp.api.kubeconfig(path, map[string]any{"token": tok}); err != nil {
			return nil, err
		}
		cp.kubeconfig[who] = path
	}

	step2, err := installStep2(root)
	if err != nil {
		return nil, err
	}
	command := []any{"kube-apiserver",
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port), "--endpoint-reconciler-type=none",
		"--tls-cert-file=" + certFile, "--tls-private-key-file=" + keyFile,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub, "--service-account-signing-key-file=" + cp.saKey,
		"--token-auth-file=" + tokens,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=false",
	}
	for _, f := range step2.flags {
		command = append(command, f)
	}
	// The page's volume names /var/lib/oidc-authenticator on the node; this node keeps its
	// state directory elsewhere (the DaemonSet's overlay moves its hostPath the same way).
	vol := step2.volume
	vol["hostPath"].(map[string]any)["path"] = strings.Replace(vol["hostPath"].(map[string]any)["path"].(string), "/var/lib/oidc-authenticator", stateDir, 1)
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "kube-apiserver", "namespace": "kube-system", "labels": map[string]any{"component": "kube-apiserver", "tier": "control-plane"}},
		"spec": map[string]any{
			"hostNetwork":       true,
			"priorityClassName": "system-node-critical",
			"containers": []any{map[string]any{
				"name": "kube-apiserver", "image": image, "imagePullPolicy": "Never",
				"command": command,
				"volumeMounts": []any{
					map[string]any{"name": "control-plane", "mountPath": adir, "readOnly": true},
					step2.mount,
				},
			}},
			"volumes": []any{
				map[string]any{"name": "control-plane", "hostPath": map[string]any{"path": adir, "type": "Directory"}},
				vol,
			},
		},
	}
	b, err := yaml.Marshal(pod)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(manifestDir, 0o700); err != nil {
		return nil, err
	}
	return cp, os.WriteFile(filepath.Join(manifestDir, "kube-apiserver.yaml"), b, 0o600)
}

// step2 is what docs/install.md's step 2 adds to kube-apiserver's static pod.
type step2 struct {
	flags  []string
	mount  map[string]any
	volume map[string]any
}

// installStep2 reads the first YAML block of docs/install.md's step 2.
func installStep2(root string) (step2, error) {
	page, err := os.ReadFile(filepath.Join(root, "docs", "install.md"))
	if err != nil {
		return step2{}, err
	}
	_, rest, ok := strings.Cut(string(page), "## 2. Point kube-apiserver at the webhook")
	if ok {
		_, rest, ok = strings.Cut(rest, "```yaml\n")
	}
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		return step2{}, fmt.Errorf("docs/install.md: no YAML block in step 2")
	}
	var pod struct {
		Spec struct {
			Containers []struct {
				Command      []string         `json:"command"`
				VolumeMounts []map[string]any `json:"volumeMounts"`
			} `json:"containers"`
			Volumes []map[string]any `json:"volumes"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(block), &pod); err != nil {
		return step2{}, fmt.Errorf("docs/install.md step 2: %w", err)
	}
	var s step2
	if len(pod.Spec.Containers) != 1 || len(pod.Spec.Containers[0].VolumeMounts) != 1 || len(pod.Spec.Volumes) != 1 {
		return s, fmt.Errorf("docs/install.md step 2: want one container with one mount and one volume:\n%s", block)
	}
	for _, f := range pod.Spec.Containers[0].Command {
		if strings.HasPrefix(f, "--") {
			s.flags = append(s.flags, f)
		}
	}
	if len(s.flags) != 3 {
		return s, fmt.Errorf("docs/install.md step 2: want three flags, got %q", s.flags)
	}
	s.mount, s.volume = pod.Spec.Containers[0].VolumeMounts[0], pod.Spec.Volumes[0]
	return s, nil
}

// writeServingCert writes a cluster CA and kube-apiserver's serving certificate for the
// loopback address and the kubernetes Service's names.
func writeServingCert(dir string) (caFile, certFile, keyFile string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e-node cluster CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key")
	for path, block := range map[string]*pem.Block{caFile: {Type: "CERTIFICATE", Bytes: caDER}, certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err = os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return
		}
	}
	return
}

// waitAPIServer waits until the static pod's kube-apiserver answers /readyz.
func (cp *controlPlane) waitAPIServer(kubelet *proc) error {
	return waitHTTP(cp.api.url+"/readyz", http.Header{"Authorization": {"Bearer " + cp.tokens["admin"]}}, 4*time.Minute, kubelet)
}

// startControllers starts kube-controller-manager and kube-scheduler as processes.
func startControllers(nb nodeBins, dir string, cp *controlPlane, procs *[]*proc) error {
	kcmPort, err := freePort()
	if err != nil {
		return err
	}
	kcm, err := startProc("kube-controller-manager", filepath.Join(dir, "kube-controller-manager.log"), nb.controllerManager,
		"--kubeconfig="+cp.kubeconfig["kube-controller-manager"],
		"--authentication-kubeconfig="+cp.kubeconfig["kube-controller-manager"],
		"--authorization-kubeconfig="+cp.kubeconfig["kube-controller-manager"],
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
		"--cert-dir="+filepath.Join(dir, "kcm-certs"),
		"--leader-elect=false",
		// What the pods' ServiceAccount volume trusts (kube-root-ca.crt).
		"--root-ca-file="+cp.caFile,
		"--service-account-private-key-file="+cp.saKey,
		"--use-service-account-credentials=false",
	)
	if err != nil {
		return err
	}
	*procs = append(*procs, kcm)
	if err := waitHTTP("https://127.0.0.1:"+strconv.Itoa(kcmPort)+"/healthz", nil, 90*time.Second, kcm); err != nil {
		return fmt.Errorf("kube-controller-manager: %w\n%s", err, kcm.tail(30))
	}
	schedPort, err := freePort()
	if err != nil {
		return err
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
		return err
	}
	*procs = append(*procs, sched)
	if err := waitHTTP("https://127.0.0.1:"+strconv.Itoa(schedPort)+"/healthz", nil, 90*time.Second, sched); err != nil {
		return fmt.Errorf("kube-scheduler: %w\n%s", err, sched.tail(30))
	}
	return nil
}

// apiserverPID finds the static pod's kube-apiserver process on the node.
func (cp *controlPlane) apiserverPID() (int, error) {
	port := "\x00--secure-port=" + strconv.Itoa(cp.port) + "\x00"
	return findProcess("kube-apiserver processes", func(cmdline string) bool {
		return strings.HasPrefix(cmdline, "kube-apiserver\x00") && strings.Contains(cmdline, port)
	})
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
func startKubelet(nb nodeBins, dir, kubeconfig, sock, staticPods string, procs *[]*proc) (*proc, error) {
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
		"staticPodPath":            staticPods,
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
