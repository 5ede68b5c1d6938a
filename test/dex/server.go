package dex

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/pki"
)

// stopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
const stopGrace = 5 * time.Second

// logTailLines is how many lines of Dex's log a start-up error shows.
const logTailLines = 40

// errAddrInUse marks a start-up failure caused by the port being taken meanwhile.
var errAddrInUse = errors.New("the port is already in use")

// Server is a running Dex instance.
type Server struct {
	IssuerURL    string // https://127.0.0.1:PORT/dex, exactly as Dex writes it in "iss"
	CAFile       string // PEM file of the CA that signed Dex's serving certificate
	CAPEM        []byte // contents of CAFile
	ClientID     string // ID of the static OAuth2 client
	ClientSecret string // secret of the static OAuth2 client
	LogFile      string // Dex's standard output and standard error
	TelemetryURL string // http://127.0.0.1:PORT of Dex's telemetry listener (/metrics, /healthz)

	cmd      *exec.Cmd
	exited   chan struct{} // closed once the Dex process has been reaped
	dir      string        // working directory
	ownDir   bool          // dir was created by Start and is removed by Stop
	client   *http.Client
	stopOnce sync.Once
	stopErr  error
}

// Start writes a Dex configuration into opts.Dir, starts `dex serve` in its own process group
// and waits until Dex's discovery document answers over TLS. ctx bounds the whole start-up,
// including a possible build of the Dex binary (see Binary); the Dex process itself keeps
// running after ctx ends, until Stop.
//
// When opts.Dir is empty, Start creates a temporary directory and Stop removes it (log included).
func Start(ctx context.Context, opts Options) (*Server, error) {
	opts = opts.withDefaults()
	bin, err := Binary(ctx)
	if err != nil {
		return nil, err
	}
	dir, ownDir := opts.Dir, opts.Dir == ""
	if ownDir {
		if dir, err = os.MkdirTemp("", "dex-"); err != nil {
			return nil, fmt.Errorf("cannot create a working directory for Dex: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create Dex's working directory %s: %w", dir, err)
	}
	s, err := start(ctx, bin, dir, opts)
	if err != nil {
		if ownDir {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	s.ownDir = ownDir
	return s, nil
}

// start prepares certificates in dir and launches Dex, retrying with another free port if the
// chosen one was taken in the meantime.
func start(ctx context.Context, bin, dir string, opts Options) (*Server, error) {
	files := pki.Files{Dir: filepath.Join(dir, "pki")}
	if _, err := pki.Ensure(files, pki.Options{Hostnames: []string{"127.0.0.1", "localhost"}}); err != nil {
		return nil, fmt.Errorf("cannot create the TLS certificate for Dex: %w", err)
	}
	caPEM, err := os.ReadFile(files.CACert())
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA certificate for Dex: %w", err)
	}
	client, err := httpClient(caPEM)
	if err != nil {
		return nil, err
	}
	attempts := 1
	if opts.Port == 0 {
		attempts = 3
	}
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(ctx); err != nil {
				return nil, err
			}
		}
		telemetryPort, err := freePort(ctx)
		if err != nil {
			return nil, err
		}
		address := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		telemetry := net.JoinHostPort("127.0.0.1", strconv.Itoa(telemetryPort))
		s := &Server{
			IssuerURL:    "https://" + address + "/dex",
			CAFile:       files.CACert(),
			CAPEM:        caPEM,
			ClientID:     opts.ClientID,
			ClientSecret: opts.ClientSecret,
			LogFile:      filepath.Join(dir, "dex.log"),
			TelemetryURL: "http://" + telemetry,
			dir:          dir,
			client:       client,
		}
		l := listenConfig{issuerURL: s.IssuerURL, address: address, certFile: files.ServerCert(), keyFile: files.ServerKey(), telemetry: telemetry}
		err = s.launch(ctx, bin, opts, l)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errAddrInUse) || attempt >= attempts {
			return nil, err
		}
	}
}

// launch writes the configuration, starts Dex and waits until it is ready. On failure the
// process is stopped and the error carries the tail of Dex's log.
func (s *Server) launch(ctx context.Context, bin string, opts Options, l listenConfig) error {
	configFile := filepath.Join(s.dir, "config.yaml")
	if err := writeConfig(configFile, opts, l); err != nil {
		return err
	}
	logFile, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create Dex's log file: %w", err)
	}
	defer logFile.Close() // the child keeps its own copy of the descriptor

	s.cmd = exec.Command(bin, "serve", configFile)
	s.cmd.Dir = s.dir
	s.cmd.Stdout = logFile
	s.cmd.Stderr = logFile
	// Take the configuration literally: bcrypt hashes and paths must not be env-expanded.
	s.cmd.Env = append(os.Environ(), "DEX_EXPAND_ENV=false")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("cannot start Dex (%s): %w", bin, err)
	}
	s.exited = make(chan struct{})
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()

	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		tail := s.LogTail(logTailLines)
		if strings.Contains(tail, "address already in use") {
			err = fmt.Errorf("%w: %w", errAddrInUse, err)
		}
		return fmt.Errorf("waiting for Dex at %s failed: %w\n--- last lines of %s ---\n%s", s.IssuerURL, err, s.LogFile, tail)
	}
	return nil
}

// Stop ends Dex: SIGTERM to its process group, then SIGKILL if it is still running after five
// seconds. It removes the working directory if Start created it. Calling Stop again is harmless.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

// stop does the work of Stop once.
func (s *Server) stop() error {
	var errs []error
	if s.cmd != nil && s.cmd.Process != nil {
		pgid := s.cmd.Process.Pid
		if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("cannot send SIGTERM to Dex: %w", err))
		}
		timer := time.NewTimer(stopGrace)
		defer timer.Stop()
		select {
		case <-s.exited:
		case <-timer.C:
			if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("cannot kill Dex: %w", err))
			}
			<-s.exited
		}
	}
	if s.ownDir {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("cannot remove Dex's working directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// HTTPClient returns an HTTP client that trusts the CA that signed Dex's certificate.
func (s *Server) HTTPClient() *http.Client {
	return s.client
}

// LogTail returns the last n lines of Dex's log, or a note saying why it cannot be read.
func (s *Server) LogTail(n int) string {
	data, err := os.ReadFile(s.LogFile)
	if err != nil {
		return fmt.Sprintf("(cannot read Dex's log: %v)", err)
	}
	return lastLines(string(data), n)
}

// httpClient returns a client trusting only the CA certificates in caPEM.
func httpClient(caPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the CA file for Dex holds no PEM certificate")
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: transport, Timeout: 30 * time.Second}, nil
}

// freePort asks the kernel for a currently unused TCP port on 127.0.0.1.
func freePort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
