// Package release checks that the ways of building and shipping oidc-authenticator agree: the
// Dockerfile and the Makefile build the same binary with the same version stamping, the image
// `make image` packs starts the same way as the Dockerfile's, and the manifests pin the image of
// the version the changelog releases.
package release

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const root = "../.."

var stamps = map[string]string{"VERSION": "v9.8.7", "REVISION": "0123456789abcdef", "BUILD_DATE": "2026-01-02T03:04:05Z"}

// goBuild is one `go build` command line: its environment assignments, its flags and the package.
type goBuild struct {
	env      []string
	trimpath bool
	ldflags  string
	pkg      string
}

// parseGoBuild reads the words of a shell command that runs go build.
func parseGoBuild(t *testing.T, words []string) goBuild {
	t.Helper()
	var b goBuild
	i := 0
	for ; i < len(words) && strings.Contains(words[i], "=") && !strings.HasPrefix(words[i], "-"); i++ {
		if !strings.HasPrefix(words[i], "GOOS=") && !strings.HasPrefix(words[i], "GOARCH=") {
			b.env = append(b.env, words[i])
		}
	}
	if i+1 >= len(words) || filepath.Base(words[i]) != "go" || words[i+1] != "build" {
		t.Fatalf("not a go build command: %q", words)
	}
	for i += 2; i < len(words); i++ {
		switch w := words[i]; {
		case w == "-trimpath":
			b.trimpath = true
		case w == "-ldflags":
			i++
			b.ldflags = words[i]
		case w == "-o":
			i++
		case strings.HasPrefix(w, "-"):
			t.Fatalf("flag %q not compared: teach this test about it", w)
		default:
			b.pkg = w
		}
	}
	slices.Sort(b.env)
	return b
}

// shellWords splits a command line as sh would for quotes (no expansions).
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// makeDryRun returns the commands `make -n target` would run with the stamps given.
func makeDryRun(t *testing.T, target string) []string {
	t.Helper()
	args := []string{"-n", "-C", root, target}
	for k, v := range stamps {
		args = append(args, k+"="+v)
	}
	out, err := exec.Command("make", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %s: %v\n%s", target, err, out)
	}
	return strings.Split(strings.ReplaceAll(string(out), "\\\n", " "), "\n")
}

func lineWith(t *testing.T, lines []string, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for _, l := range lines {
		if rx.MatchString(l) {
			return l
		}
	}
	t.Fatalf("no line matches %s in:\n%s", re, strings.Join(lines, "\n"))
	return ""
}

// dockerfile returns the Dockerfile's instructions, continuation lines joined and the build
// args replaced by the stamps.
func dockerfile(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "\\\n", " ")
	for k, v := range stamps {
		s = strings.ReplaceAll(s, "${"+k+"}", v)
	}
	return strings.Split(s, "\n")
}

func TestDockerfileBuildsWhatTheMakefileBuilds(t *testing.T) {
	docker := parseGoBuild(t, shellWords(strings.TrimPrefix(lineWith(t, dockerfile(t), `^RUN .*go build`), "RUN ")))
	for _, target := range []string{"build", "image"} {
		mk := parseGoBuild(t, shellWords(lineWith(t, makeDryRun(t, target), `go build .*\./cmd/oidc-authenticator`)))
		if !slices.Equal(mk.env, docker.env) || mk.trimpath != docker.trimpath || mk.ldflags != docker.ldflags || mk.pkg != docker.pkg {
			t.Errorf("make %s builds\n  %+v\nthe Dockerfile builds\n  %+v", target, mk, docker)
		}
	}
	if docker.ldflags == "" || !docker.trimpath || !slices.Contains(docker.env, "CGO_ENABLED=0") {
		t.Errorf("want a static, trimmed build: %+v", docker)
	}
	for k, v := range map[string]string{"version": stamps["VERSION"], "revision": stamps["REVISION"], "buildDate": stamps["BUILD_DATE"]} {
		if !strings.Contains(docker.ldflags, "-X main."+k+"="+v) {
			t.Errorf("ldflags %q do not stamp main.%s", docker.ldflags, k)
		}
	}
}

// The image `make image` writes starts like the Dockerfile's: same entrypoint, arguments and user.
func TestImageStartsLikeTheDockerfile(t *testing.T) {
	lines := dockerfile(t)
	var entrypoint, cmd []string
	if err := json.Unmarshal([]byte(strings.TrimPrefix(lineWith(t, lines, `^ENTRYPOINT `), "ENTRYPOINT ")), &entrypoint); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(lineWith(t, lines, `^CMD `), "CMD ")), &cmd); err != nil {
		t.Fatal(err)
	}
	user := strings.TrimSpace(strings.TrimPrefix(lineWith(t, lines, `^USER `), "USER "))
	tool := shellWords(lineWith(t, makeDryRun(t, "image"), `image-tool -binary`))
	var toolCmd []string
	toolPath, toolUser := "/usr/local/bin/oidc-authenticator", "65532:65532" // the tool's defaults
	for i := 0; i+1 < len(tool); i++ {
		switch tool[i] {
		case "-cmd":
			toolCmd = append(toolCmd, tool[i+1])
		case "-path":
			toolPath = tool[i+1]
		case "-user":
			toolUser = tool[i+1]
		}
	}
	if !slices.Equal(entrypoint, []string{toolPath}) || !slices.Equal(cmd, toolCmd) || user != toolUser {
		t.Errorf("Dockerfile: ENTRYPOINT %q CMD %q USER %s; make image: %s %q as %s", entrypoint, cmd, user, toolPath, toolCmd, toolUser)
	}
}

// The Dockerfile's Go is the one go.mod asks for.
func TestDockerfileGoVersion(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(mod))[1]
	from := lineWith(t, dockerfile(t), `^FROM golang:`)
	if !strings.HasPrefix(from, "FROM golang:"+want+"-") {
		t.Errorf("%q: want golang:%s (go.mod)", from, want)
	}
}

// The shipped kustomization pins the image of the newest version in CHANGELOG.md, so that the
// manifests of a release tag deploy that release.
func TestKustomizationPinsTheReleasedVersion(t *testing.T) {
	changelog, err := os.ReadFile(filepath.Join(root, "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^## \[?(v\d+\.\d+\.\d+)\]?`).FindSubmatch(changelog)
	if m == nil {
		t.Fatal("CHANGELOG.md names no released version (## v1.2.3 ...)")
	}
	k, err := os.ReadFile(filepath.Join(root, "manifests", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tag := regexp.MustCompile(`(?m)^\s+newTag: (\S+)`).FindSubmatch(k)
	if tag == nil || string(tag[1]) != string(m[1]) {
		t.Errorf("manifests/kustomization.yaml newTag %q, CHANGELOG.md's newest release %s", tag, m[1])
	}
	ds, _ := os.ReadFile(filepath.Join(root, "manifests", "daemonset.yaml"))
	if strings.Count(string(ds), "image: ghcr.io/oidc-authenticator/oidc-authenticator:"+string(m[1])) != 2 {
		t.Errorf("manifests/daemonset.yaml does not name %s for both containers", m[1])
	}
}
