//go:build tools

// Package kubeapiserver pins the kube-apiserver the end-to-end tests run, and the kubectl of
// the same release, built when none is installed. It lives in a module of its own so the
// product's go.mod stays lean; only `go build` is run here (`go mod tidy` refuses kubernetes'
// test-only modules).
package kubeapiserver

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
