package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// cacheDirName is the subdirectory of the state directory the server writes to: what a run
// learned (issuers' keys, the accepted identity mapping) for the next. The DaemonSet mounts it
// writable and the rest of the state directory read-only.
const cacheDirName = "cache"

// ensureCacheDir creates stateDir/cache (0700, owned by whoever runs init: in the DaemonSet,
// the server's user) and says whether it was created or kept.
func ensureCacheDir(stateDir string) (done, dir string, err error) {
	dir = filepath.Join(stateDir, cacheDirName)
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return "kept", dir, nil
	case err == nil:
		return "", dir, fmt.Errorf("%s exists and is not a directory", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return "", dir, fmt.Errorf("state cache directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", dir, fmt.Errorf("create the state cache directory: %w", err)
	}
	return "created", dir, nil
}
