// Command image packs a static binary into a container image tarball without a Docker
// daemon or a registry: one layer on an empty base (no shell, no package manager), the
// files a distroless "static" base provides (passwd and group with the non-root user 65532,
// CA certificates, /tmp), and the version, git revision and build date as OCI labels.
// `make image` runs it on the binary `make build` would produce for linux; the tarball loads
// with `docker load`, `ctr images import` or `kind load image-archive`.
//
// It lives in a module of its own so that the product's go.mod stays free of
// go-containerregistry.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	binary, target, out, platform      string
	user, caCerts                      string
	version, revision, created, source string
	refs, cmd, add                     listFlag
	exposedPort                        string
}

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "", "the static binary to pack (required)")
	flag.StringVar(&o.target, "path", "/usr/local/bin/oidc-authenticator", "where the binary goes in the image; it is the entrypoint")
	flag.Var(&o.refs, "ref", "image reference (repository:tag) written into the tarball; repeat for more tags (required)")
	flag.Var(&o.cmd, "cmd", "default arguments (the image's CMD); repeat for each")
	flag.Var(&o.add, "add", "a file of this machine copied to the same path in the image, e.g. the C library of a binary that is not static; repeat for each")
	flag.StringVar(&o.out, "o", "", "output tarball (required)")
	flag.StringVar(&o.platform, "platform", "linux/amd64", "OS/architecture of the binary")
	flag.StringVar(&o.user, "user", "65532:65532", "user:group the container runs as")
	flag.StringVar(&o.caCerts, "ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied to /etc/ssl/certs (\"\" for none)")
	flag.StringVar(&o.version, "version", "dev", "org.opencontainers.image.version label")
	flag.StringVar(&o.revision, "revision", "unknown", "org.opencontainers.image.revision label")
	flag.StringVar(&o.created, "created", "", "build date, RFC 3339 (default: now); also every file's time, so that the same inputs give the same image")
	flag.StringVar(&o.source, "source", "https://github.com/oidc-authenticator/oidc-authenticator", "org.opencontainers.image.source label")
	flag.StringVar(&o.exposedPort, "expose", "21362/tcp", "port the image declares (\"\" for none)")
	flag.Parse()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(o options, stdout io.Writer) error {
	if o.binary == "" || o.out == "" || len(o.refs) == 0 {
		return errors.New("-binary, -ref and -o are required")
	}
	created := time.Now().UTC().Truncate(time.Second)
	if o.created != "" {
		t, err := time.Parse(time.RFC3339, o.created)
		if err != nil {
			return fmt.Errorf("-created: %w", err)
		}
		created = t.UTC()
	}
	osName, arch, ok := strings.Cut(o.platform, "/")
	if !ok {
		return fmt.Errorf("-platform %q: want OS/ARCH", o.platform)
	}
	bin, err := os.ReadFile(o.binary)
	if err != nil {
		return err
	}
	var ca []byte
	if o.caCerts != "" {
		if ca, err = os.ReadFile(o.caCerts); err != nil {
			return fmt.Errorf("CA certificates: %w (-ca-certificates \"\" to leave them out)", err)
		}
	}
	extra := map[string][]byte{}
	for _, f := range o.add {
		if extra[f], err = os.ReadFile(f); err != nil {
			return err
		}
	}
	layerTar, err := rootfs(o.target, bin, ca, extra, created)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "oidc-authenticator image: " + path.Base(o.target) + " " + o.version,
			Comment:   "static binary, passwd/group, CA certificates",
		},
	})
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = osName, arch
	cfg.Created = v1.Time{Time: created}
	cfg.Author = "oidc-authenticator"
	cfg.Config.User = o.user
	cfg.Config.WorkingDir = "/"
	cfg.Config.Entrypoint = []string{o.target}
	cfg.Config.Cmd = o.cmd
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	if o.exposedPort != "" {
		cfg.Config.ExposedPorts = map[string]struct{}{o.exposedPort: {}}
	}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    path.Base(o.target),
		"org.opencontainers.image.version":  o.version,
		"org.opencontainers.image.revision": o.revision,
		"org.opencontainers.image.created":  created.Format(time.RFC3339),
		"org.opencontainers.image.source":   o.source,
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}

	refs := map[name.Reference]v1.Image{}
	for _, r := range o.refs {
		ref, err := name.NewTag(r, name.WeakValidation)
		if err != nil {
			return fmt.Errorf("-ref %q: %w", r, err)
		}
		refs[ref] = img
	}
	if err := tarball.MultiRefWriteToFile(o.out, refs); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	for _, r := range o.refs {
		fmt.Fprintf(stdout, "%s %s %s\n", r, digest, o.out)
	}
	return nil
}

// rootfs is the image's only layer: what a distroless static base holds, plus the binary.
func rootfs(target string, bin, ca []byte, extra map[string][]byte, mtime time.Time) ([]byte, error) {
	type entry struct {
		mode     int64
		uid, gid int
		data     []byte // nil for a directory
	}
	files := map[string]entry{
		"etc":               {mode: 0o755},
		"etc/passwd":        {mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		"etc/group":         {mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		"etc/nsswitch.conf": {mode: 0o644, data: []byte("hosts: files dns\n")},
		"home":              {mode: 0o755},
		"home/nonroot":      {mode: 0o700, uid: 65532, gid: 65532},
		"root":              {mode: 0o700},
		"tmp":               {mode: 0o1777},
	}
	if ca != nil {
		files["etc/ssl"] = entry{mode: 0o755}
		files["etc/ssl/certs"] = entry{mode: 0o755}
		files["etc/ssl/certs/ca-certificates.crt"] = entry{mode: 0o644, data: ca}
	}
	add := func(name string, e entry) {
		name = strings.TrimPrefix(path.Clean(name), "/")
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if _, ok := files[dir]; !ok {
				files[dir] = entry{mode: 0o755}
			}
		}
		files[name] = e
	}
	for name, data := range extra {
		add(name, entry{mode: 0o755, data: data})
	}
	add(target, entry{mode: 0o755, data: bin})

	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names) // parents before children, and the same bytes every time
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := files[n]
		h := &tar.Header{Name: n, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: mtime, Format: tar.FormatPAX}
		if e.data == nil {
			h.Typeflag, h.Name = tar.TypeDir, n+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if e.data != nil {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
