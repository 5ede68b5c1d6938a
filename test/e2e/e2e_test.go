//go:build e2e

// Package e2e proves the product where users meet it: kubectl → a real kube-apiserver →
// the oidc-authenticator binary → a real Dex, with etcd underneath. Nothing is mocked.
// Run it with `make e2e`, which builds or installs every component first.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/test/dex"
)

type outcome struct {
	name   string
	passed bool
	took   time.Duration
}

func TestE2E(t *testing.T) {
	w := newWorld(t, "e2e")
	dir := w.dir
	var outcomes []outcome
	t.Cleanup(func() {
		for _, o := range outcomes {
			verdict := "PASS"
			if !o.passed {
				verdict = "FAIL"
			}
			fmt.Printf("e2e: %-4s %-62s %6.1fs\n", verdict, o.name, o.took.Seconds())
		}
	})

	ctx := context.Background()
	start := func(opts dex.Options, name string) *dex.Server {
		opts.Dir = filepath.Join(dir, name)
		d, err := dex.Start(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s log tail:\n%s", name, d.LogTail(20))
			}
			d.Stop()
		})
		return d
	}
	w.dex = start(dex.Options{Users: users(), KeysRotationPeriod: 20 * time.Second, ExtraClients: []dex.Client{otherClient}}, "dex")
	w.short = start(dex.Options{Users: users(), IDTokenExpiry: 4 * time.Second}, "dex-short")
	w.stray = start(dex.Options{Users: users()}, "dex-stray")

	for _, version := range []string{"v1", "v1beta1"} {
		ok := t.Run(version, func(t *testing.T) {
			w.t = t
			w.setUp(version)
			for _, sc := range scenarios {
				name := version + " " + sc.name
				began := time.Now()
				passed := t.Run(sc.name, func(t *testing.T) {
					w.t = t
					sc.run(w)
				})
				w.t = t
				outcomes = append(outcomes, outcome{name: name, passed: passed, took: time.Since(began)})
			}
		})
		w.t = t
		if !ok {
			break
		}
	}
}

// setUp starts kube-apiserver for one TokenReview version, gives the webhook its
// ServiceAccount through the shipped RBAC, and starts the webhook.
func (w *world) setUp(version string) {
	t := w.t
	w.version = version
	vdir := filepath.Join(w.dir, version)
	if err := os.MkdirAll(vdir, 0o700); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	w.webhookPort = port
	if w.metricsPort, err = freePort(); err != nil {
		t.Fatal(err)
	}
	w.state = filepath.Join(vdir, "state")
	out, err := exec.Command(w.bins.authenticator, "init", "--state-dir", w.state, "--hostname", "127.0.0.1",
		"--address", fmt.Sprintf("127.0.0.1:%d", port)).CombinedOutput()
	if err != nil {
		t.Fatalf("oidc-authenticator init: %v\n%s", err, out)
	}
	api, err := startAPIServer(w.bins, filepath.Join(vdir, "apiserver"), w.etcdURL,
		filepath.Join(w.state, "apiserver-webhook-kubeconfig.yaml"), version)
	if err != nil {
		t.Fatal(err)
	}
	w.api = api
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver log tail:\n%s", api.proc.tail(30))
			if w.webhook != nil {
				t.Logf("webhook log tail:\n%s", w.webhook.tail(60))
			}
		}
		w.webhook.stop()
		api.proc.stop()
	})
	w.admin = filepath.Join(vdir, "admin.kubeconfig")
	w.user = filepath.Join(vdir, "user.kubeconfig")
	w.saConfig = filepath.Join(vdir, "webhook-sa.kubeconfig")
	if err := api.kubeconfig(w.admin, map[string]any{"token": api.adminToken}); err != nil {
		t.Fatal(err)
	}
	if err := api.kubeconfig(w.user, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	// The webhook runs with exactly the permissions the shipped manifests grant it.
	w.kubectlAdmin("", "apply", "-f", filepath.Join(w.root, "manifests", "serviceaccount.yaml"), "-f", filepath.Join(w.root, "manifests", "rbac.yaml"))
	token := strings.TrimSpace(w.kubectlAdmin("", "create", "token", "oidc-authenticator", "-n", "kube-system", "--duration=2h"))
	if err := api.kubeconfig(w.saConfig, map[string]any{"token": token}); err != nil {
		t.Fatal(err)
	}
	w.applyMapping(initialUsers, initialGroups)
	w.startWebhook(false)
}
