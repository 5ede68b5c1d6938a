//go:build !unix

package webhook

import (
	"context"
	"fmt"
	"net"
)

// Listen opens a TCP listener on addr. Without SO_REUSEPORT (not a Unix system) a second
// instance cannot listen on the same address until this one has stopped.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}
