// Package reference checks oidc-authenticator against kube-apiserver's own JWT authenticator
// (k8s.io/apiserver/plugin/pkg/authenticator/token/oidc): for a table of jwt[] entries and
// tokens, both must give the same user or both deny, except where a documented, deliberate
// difference says how ours follows from the apiserver's answer. It is a module of its own so
// that the webhook links only k8s.io/apiserver's CEL library, for its cost estimator.
package reference
