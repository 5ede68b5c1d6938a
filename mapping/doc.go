// Package mapping maps verified OIDC identities to Kubernetes users and groups, as a cluster
// admin writes them in a ConfigMap (keys mapUsers and mapGroups).
//
// A mapping is validated whole before it is used: Parse reports every problem with the key,
// entry index and field it concerns, and a Store keeps the last good mapping in force when a
// new version is refused. Sources (a file, a mounted ConfigMap directory, or a ConfigMap
// watched through the Kubernetes API) deliver new versions to the Store as Snapshots.
package mapping
