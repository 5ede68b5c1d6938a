package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The tarball holds the binary as the entrypoint, runs as the non-root user, carries the
// version labels, answers to every tag asked for, and is the same image for the same inputs.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "oidc-authenticator")
	ca := filepath.Join(dir, "ca.crt")
	os.WriteFile(bin, []byte("\x7fELF not really"), 0o755)
	os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644)
	o := options{binary: bin, target: "/usr/local/bin/oidc-authenticator", platform: "linux/arm64", user: "65532:65532",
		caCerts: ca, version: "v1.2.3", revision: "0123abc", created: "2026-01-02T03:04:05Z", source: "s",
		refs: listFlag{"example.com/oa:v1.2.3", "example.com/oa:second"}, cmd: listFlag{"server", "--config=/c.yaml"}, exposedPort: "21362/tcp"}
	var out [2]bytes.Buffer
	for i := range out {
		o.out = filepath.Join(dir, "img.tar")
		if err := run(o, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	if out[0].String() != out[1].String() || !strings.HasPrefix(out[0].String(), "example.com/oa:v1.2.3 sha256:") {
		t.Fatalf("two builds of the same inputs: %q and %q", out[0].String(), out[1].String())
	}
	for _, r := range o.refs {
		tag, _ := name.NewTag(r)
		img, err := tarball.ImageFromPath(o.out, &tag)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cfg.Config
		if cfg.OS != "linux" || cfg.Architecture != "arm64" || c.User != "65532:65532" ||
			strings.Join(c.Entrypoint, " ") != "/usr/local/bin/oidc-authenticator" || strings.Join(c.Cmd, " ") != "server --config=/c.yaml" ||
			c.Labels["org.opencontainers.image.version"] != "v1.2.3" || c.Labels["org.opencontainers.image.revision"] != "0123abc" ||
			c.Labels["org.opencontainers.image.created"] != "2026-01-02T03:04:05Z" {
			t.Fatalf("config: %+v", cfg)
		}
		files := map[string]*tar.Header{}
		rc := mutate.Extract(img)
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			files[strings.TrimSuffix(h.Name, "/")] = h
		}
		rc.Close()
		for _, f := range []string{"usr/local/bin/oidc-authenticator", "etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt", "tmp"} {
			if files[f] == nil {
				t.Errorf("%s missing from the image", f)
			}
		}
		if files["bin/sh"] != nil || files["bin"] != nil {
			t.Error("the image has a shell")
		}
		if h := files["usr/local/bin/oidc-authenticator"]; h != nil && (h.Mode&0o111 == 0 || h.Uid != 0) {
			t.Errorf("binary mode %o uid %d: want executable and owned by root (the non-root user cannot replace it)", h.Mode, h.Uid)
		}
	}
}
