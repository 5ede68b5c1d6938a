// Package browser opens a URL in the user's web browser, when there is one.
package browser

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Command returns the command line that opens a URL in a browser on this machine, or nil
// when none is available: $BROWSER if set, else open on macOS, or xdg-open on a desktop
// session (DISPLAY or WAYLAND_DISPLAY set).
func Command() []string {
	if b := strings.Fields(os.Getenv("BROWSER")); len(b) > 0 {
		return b
	}
	switch {
	case runtime.GOOS == "darwin":
		return []string{"open"}
	case os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "":
		return nil
	}
	if p, err := exec.LookPath("xdg-open"); err == nil {
		return []string{p}
	}
	return nil
}

// Open starts the browser command on url, without waiting for it.
func Open(command []string, url string) error {
	if len(command) == 0 {
		return errors.New("no browser available")
	}
	cmd := exec.Command(command[0], append(command[1:], url)...)
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait() //nolint:errcheck // reap it; its exit status does not matter
	return nil
}
