// Package kubeconfig adds the user that logs in through the exec credential plugin to a
// kubeconfig, and optionally a context for it, leaving every other entry as it is.
package kubeconfig

import (
	"errors"
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Entry is what to write.
type Entry struct {
	User string                   // users[] name; an existing entry is replaced
	Exec *clientcmdapi.ExecConfig // the user's only credential
	// Context, if set, names a contexts[] entry to create or update with User and Cluster.
	Context string
	// Cluster is the context's cluster; empty keeps the context's own, or else takes the
	// current context's.
	Cluster string
}

// Result says what was written where.
type Result struct {
	File        string // the file that holds the user entry
	UserExisted bool   // an entry of that name was replaced
	Cluster     string // the context's cluster, when Entry.Context is set
}

// Write writes e into the kubeconfig that paths names (its explicit file, or $KUBECONFIG, or
// ~/.kube/config), as kubectl config set-credentials and set-context do: an entry that exists
// is updated in the file that holds it, a new one goes into the first file.
func Write(paths *clientcmd.PathOptions, e Entry) (Result, error) {
	if e.User == "" {
		return Result{}, errors.New("the kubeconfig user needs a name")
	}
	cfg, err := paths.GetStartingConfig()
	if err != nil {
		return Result{}, fmt.Errorf("cannot read the kubeconfig: %w", err)
	}
	res := Result{File: paths.GetDefaultFilename()}
	if old, ok := cfg.AuthInfos[e.User]; ok {
		res.UserExisted = true
		if old.LocationOfOrigin != "" {
			res.File = old.LocationOfOrigin
		}
	}
	user := clientcmdapi.NewAuthInfo()
	user.Exec = e.Exec
	cfg.AuthInfos[e.User] = user

	if e.Context != "" {
		ctx, ok := cfg.Contexts[e.Context]
		if !ok {
			ctx = clientcmdapi.NewContext()
			cfg.Contexts[e.Context] = ctx
		}
		cluster := e.Cluster
		if cluster == "" {
			cluster = ctx.Cluster
		}
		if current, ok := cfg.Contexts[cfg.CurrentContext]; cluster == "" && ok {
			cluster = current.Cluster
		}
		if cluster == "" {
			return Result{}, fmt.Errorf("which cluster is context %q for? pass --cluster (the kubeconfig has no current context to take it from)", e.Context)
		}
		if _, ok := cfg.Clusters[cluster]; !ok {
			return Result{}, fmt.Errorf("the kubeconfig has no cluster %q for context %q", cluster, e.Context)
		}
		ctx.Cluster, ctx.AuthInfo = cluster, e.User
		res.Cluster = cluster
	}
	// Paths are left as they are: the exec command stays absolute, not relative to the file.
	if err := clientcmd.ModifyConfig(paths, *cfg, false); err != nil {
		return Result{}, fmt.Errorf("cannot write the kubeconfig: %w", err)
	}
	return res, nil
}
