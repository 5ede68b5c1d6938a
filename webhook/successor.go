package webhook

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
)

// tcpListen is the state of a listening socket in /proc/net/tcp and /proc/net/tcp6.
const tcpListen = "0A"

// OtherListener reports whether a socket other than ours listens on addr, as a successor
// started with SO_REUSEPORT does, by counting the listening sockets on addr in
// /proc/net/tcp{,6} of this network namespace (the host's, for a hostNetwork pod). It returns
// false where there is no /proc (not Linux).
func OtherListener(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	want := tcp.AddrPort()
	n := 0
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		c, _ := countListeners(f, want)
		f.Close()
		n += c
	}
	return n >= 2
}

// countListeners counts the listening sockets on want in a /proc/net/tcp-format table.
func countListeners(r io.Reader, want netip.AddrPort) (int, error) {
	want = netip.AddrPortFrom(want.Addr().Unmap(), want.Port())
	sc := bufio.NewScanner(r)
	sc.Scan() // the header
	n := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != tcpListen {
			continue
		}
		local, err := parseProcAddr(f[1])
		if err != nil {
			return n, err
		}
		if local == want {
			n++
		}
	}
	return n, sc.Err()
}

// parseProcAddr decodes /proc/net/tcp's "0100007F:5372": the address as 32-bit words in host
// byte order, the port in hexadecimal.
func parseProcAddr(s string) (netip.AddrPort, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("no port in %q", s)
	}
	raw, err := hex.DecodeString(hexAddr)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address in %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	var port uint16
	if _, err := fmt.Sscanf(hexPort, "%X", &port); err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q: %w", s, err)
	}
	return netip.AddrPortFrom(addr.Unmap(), port), nil
}
