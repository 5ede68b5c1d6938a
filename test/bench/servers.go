package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one of the TokenReview servers under test, run as a process of its own so that
// its CPU time and memory can be read from /proc.
type server struct {
	name string
	cmd  *exec.Cmd
	url  string // the TokenReview endpoint
	log  string
	done chan struct{}
}

// spec says how to start a server: a program, its arguments with the placeholder {addr} for
// the listen address, and the path that answers 200 once it can serve.
type spec struct {
	name  string
	bin   string
	args  []string
	path  string // TokenReview endpoint path
	ready string // readiness path
}

func start(sp spec, dir string, roots tlsRoots) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := make([]string, len(sp.args))
	for i, a := range sp.args {
		args[i] = strings.ReplaceAll(a, "{addr}", addr)
	}
	logPath := filepath.Join(dir, sp.name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(sp.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", sp.name, err)
	}
	s := &server{name: sp.name, cmd: cmd, url: "https://" + addr + sp.path, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(s.done)
	}()
	if err := s.waitReady("https://"+addr+sp.ready, roots); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s: %w\n%s", sp.name, err, s.tail(15))
	}
	return s, nil
}

func (s *server) waitReady(url string, roots tlsRoots) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots.pool, MinVersion: tls.VersionTLS12}}}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("exited before it was ready")
		default:
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after 30s at %s", url)
}

func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

func (s *server) tail(n int) string {
	b, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// usage is a server process's CPU time and resident memory at one moment.
type usage struct {
	cpu time.Duration
	rss int64 // bytes
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat on Linux.
const clockTick = 100

func (s *server) usage() (usage, error) {
	pid := s.cmd.Process.Pid
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage{}, err
	}
	// The command name, field 2, may hold spaces; the fields after it are plain numbers.
	rest := stat[bytes.LastIndexByte(stat, ')')+2:]
	fields := strings.Fields(string(rest))
	// utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return usage{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return usage{}, err
	}
	var rssKiB int64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKiB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return usage{cpu: time.Duration(utime+stime) * time.Second / clockTick, rss: rssKiB << 10}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
