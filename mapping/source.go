package mapping

import "context"

// Snapshot is one version of the raw mapping data, as a source delivers it.
type Snapshot struct {
	// Data holds the ConfigMap data: the keys mapUsers and mapGroups.
	Data map[string]string
	// Parts, when set, are the ConfigMaps of a mapping made of several, in the order they
	// are merged (ParseSet); Data and BinaryData are then unused.
	Parts []Part
	// BinaryData are the keys of the ConfigMap's binaryData: never read, each refused with
	// the other problems of the version.
	BinaryData []string
	// Version names the version: a resourceVersion, or a content hash for files.
	Version string
	// Deleted says the ConfigMap or file is gone: every mapping is revoked.
	Deleted bool
	// Err says the source could not be read or decoded as a ConfigMap; the version is
	// refused like an invalid one.
	Err error
}

// Source delivers snapshots of the mapping data.
type Source interface {
	// Run sends the current state, then every change, until ctx ends.
	Run(ctx context.Context, update func(Snapshot)) error
	// String names the source for logs, e.g. "file /etc/oidc-authenticator/mapping".
	String() string
}
