//go:build tools

// Package kubeapiserver pins the kube-apiserver the end-to-end tests run, the kubectl of the
// same release (built when none is installed), and the kubelet, kube-controller-manager and
// kube-scheduler of the real node in `make e2e-node`. It lives in a module of its own so the
// product's go.mod stays lean; only `go build` is run here (`go mod tidy` refuses kubernetes'
// test-only modules).
package kubeapiserver

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
