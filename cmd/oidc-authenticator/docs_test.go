package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/issuer/issuertest"
)

// The documentation test: every command line in a fenced sh block of README.md and docs/*.md,
// every command in a comment of manifests/*.yaml, and every configuration or mapping example
// is run against the built binary, so that what an admin copies from the docs works. What
// needs a cluster, a live issuer or a node is listed in docsNotRun with the reason; an entry
// there that matches nothing fails the test too, so the list cannot rot.

// docsNotRun lists what the documentation test does not run: a regular expression matched
// against a command line (or the first line of a YAML example), and why.
var docsNotRun = []struct{ pattern, reason string }{
	{`^make `, "a Makefile target: CI (.ci/run) runs these"},
	{`^kubectl `, "needs a Kubernetes cluster; test/e2e runs the manifests and kubectl's login against a real kube-apiserver"},
	{`^sudo (mkdir|chown|chmod|ls|crictl) `, "node administration, not this program"},
	{`^ID_TOKEN=\$\(curl `, "a live issuer's token endpoint; test/dex's PasswordGrant sends the Dex one"},
	{`^curl -s 'http://127\.0\.0\.1:21363/`, "a webhook running on a control-plane node"},
	{`^jwt_claims`, "a shell helper of the reader's (base64, jq)"},
	{`^oidc-authenticator server --config /etc/oidc-authenticator/config\.yaml$`, "with mapping.configMap the server needs the Kubernetes API (its pod's service account); test/e2e runs it so"},
	{`^yaml spec:`, "kube-apiserver's static pod (its webhook flags are checked against init's output)"},
	{`^yaml apiServer:`, "kubeadm's ClusterConfiguration"},
	{`^yaml issuer: https://dex\.example\.com/dex`, "Dex's own configuration; test/dex starts a real Dex with the same settings"},
	{`^yaml users:`, "an excerpt of the kubeconfig that `kubeconfig` writes (checked by TestKubeconfig*)"},
	{`^minikube `, "starts a minikube cluster"},
	{`^aws eks `, "a managed control plane's (EKS) own OIDC setting"},
	{`^yaml # kustomization\.yaml of your overlay`, "a kustomize overlay of the manifests; test/e2e's node test applies one with kubectl"},
	{`^yaml patches:`, "a kustomize overlay's patch of the manifests, for minikube"},
	{`^yaml kube-apiserver-arg:`, "k3s's and RKE2's own configuration"},
	{`^yaml kind: Cluster`, "kind's own configuration"},
	{`^json \{"kind":"ExecCredential"`, "the plugin's output, shown as an example (TestToken* check it)"},
	{`^json \{"_claim_names"`, "the distributed-claim part of a token, shown (webhook/issuer's TestDistributedClaims and test/reference resolve such tokens)"},
}

// docsRun are the programs whose documented command lines the test runs in its sandbox: this
// one, cp (a reader's copy of a shipped file before editing it) and mkdir.
var docsRun = []string{"oidc-authenticator", "/usr/local/bin/oidc-authenticator", "cp", "mkdir"}

// docCommand is a command line found in the documentation.
type docCommand struct {
	where string // file:line
	text  string // continuation lines joined
}

// docExample is a YAML example found in the documentation.
type docExample struct {
	where string
	lang  string
	text  string
}

var fenceRE = regexp.MustCompile("(?ms)^( *)```(\\w*)\\n(.*?)^ *```")

// readDocs returns the command lines and the examples of README.md and docs/*.md, and the
// commands in the comments of manifests/*.yaml.
func readDocs(t *testing.T) ([]docCommand, []docExample) {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../../README.md"}, files...)
	var (
		cmds []docCommand
		exs  []docExample
	)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		name := strings.TrimPrefix(f, "../../")
		for _, m := range fenceRE.FindAllStringSubmatchIndex(s, -1) {
			lang, indent := s[m[4]:m[5]], m[3]-m[2]
			body := dedent(s[m[6]:m[7]], indent)
			line := strings.Count(s[:m[6]], "\n") + 1
			where := fmt.Sprintf("%s:%d", name, line)
			switch lang {
			case "sh", "bash":
				for _, c := range commandLines(body) {
					cmds = append(cmds, docCommand{where: where, text: c})
				}
			case "yaml", "json":
				exs = append(exs, docExample{where: where, lang: lang, text: body})
			}
		}
	}
	manifests, err := filepath.Glob("../../manifests/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	commentRE := regexp.MustCompile(`(?m)^#\s+((?:oidc-authenticator|kubectl) .*)$`)
	for _, f := range manifests {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range commentRE.FindAllSubmatchIndex(b, -1) {
			where := fmt.Sprintf("%s:%d", strings.TrimPrefix(f, "../../"), bytes.Count(b[:m[0]], []byte("\n"))+1)
			cmds = append(cmds, docCommand{where: where, text: string(b[m[2]:m[3]])})
		}
	}
	return cmds, exs
}

func dedent(s string, n int) string {
	if n == 0 {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, strings.Repeat(" ", n))
	}
	return strings.Join(lines, "\n")
}

var funcRE = regexp.MustCompile(`^\w+\(\) \{`)

// commandLines splits a shell block into commands: continuation lines are joined, comment
// lines and blank lines dropped, and "a && b" is two commands.
func commandLines(body string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(body, "\n") {
		if cur == "" && (strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#")) {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\")
			continue
		}
		cur += l
		if funcRE.MatchString(cur) && !strings.HasSuffix(strings.TrimSpace(cur), "}") {
			cur += " " // a shell function: its body is part of the command
			continue
		}
		for _, part := range strings.Split(cur, " && ") {
			out = append(out, strings.Join(strings.Fields(part), " "))
		}
		cur = ""
	}
	return out
}

// docSandbox is where the documented commands run: the absolute paths the docs name are
// rewritten into it, and it holds the files they refer to.
type docSandbox struct {
	dir, bin string
	env      []string
}

func (sb *docSandbox) rewrite(cmd string) string {
	cmd = strings.TrimPrefix(cmd, "sudo ")
	r := strings.NewReplacer(
		"/usr/local/bin/oidc-authenticator", "oidc-authenticator",
		"/var/lib/oidc-authenticator", filepath.Join(sb.dir, "var/lib/oidc-authenticator"),
		"/etc/oidc-authenticator/", filepath.Join(sb.dir, "etc/oidc-authenticator")+"/",
	)
	return r.Replace(cmd)
}

func (sb *docSandbox) run(t *testing.T, cmd string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", sb.rewrite(cmd))
	c.Dir = sb.dir
	c.Env = sb.env
	out, err := c.CombinedOutput()
	return string(out), err
}

// buildBinary builds this command into dir and returns its path.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "oidc-authenticator")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// newDocSandbox builds the binary and lays out the files the documented commands use: the
// shipped configuration (its issuer replaced by a test issuer), the shipped mapping under the
// names the docs give it, a token from the test issuer, and a kubeconfig with a cluster.
func newDocSandbox(t *testing.T) (*docSandbox, *issuertest.Issuer) {
	t.Helper()
	dir := t.TempDir()
	binDir := filepath.Join(dir, "bin")
	os.MkdirAll(binDir, 0o755)
	sb := &docSandbox{dir: filepath.Join(dir, "work"), bin: buildBinary(t, binDir)}
	os.MkdirAll(filepath.Join(sb.dir, "etc/oidc-authenticator"), 0o755)
	os.MkdirAll(filepath.Join(sb.dir, "var/lib"), 0o755)

	is := issuertest.New(t)
	repoManifests := must(filepath.Abs("../../manifests"))
	if err := os.Symlink(repoManifests, filepath.Join(sb.dir, "manifests")); err != nil {
		t.Fatal(err)
	}
	cfg := shippedConfig(t, is)
	mappingExample := must(os.ReadFile(filepath.Join(repoManifests, "mapping-example.yaml")))
	for name, content := range map[string][]byte{
		"config.yaml":                        cfg,
		"etc/oidc-authenticator/config.yaml": cfg,
		"mapping-example.yaml":               mappingExample,
		"oidc-auth.yaml":                     mappingExample,
		// The two parts of a mapping of several ConfigMaps (docs/mapping.md, mapping validate --merge).
		"oidc-auth-00.yaml": bytes.Replace(mappingExample, []byte("name: oidc-auth\n"), []byte("name: oidc-auth-00\n"), 1),
		"oidc-auth-01.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: oidc-auth-01, namespace: kube-system}\ndata:\n  mapGroups: |\n    - {group: operators, groups: [ops-team]}\n"),
		"token.txt":         []byte(is.Token(t, nil) + "\n"),
		"kubeconfig": []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster: {server: 'https://127.0.0.1:6443'}\n- name: CLUSTER\n  cluster: {server: 'https://127.0.0.1:6443'}\n" +
			"contexts:\n- name: admin\n  context: {cluster: kubernetes, user: admin}\ncurrent-context: admin\nusers:\n- name: admin\n  user: {token: x}\n"),
	} {
		if err := os.WriteFile(filepath.Join(sb.dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sb.env = []string{
		"PATH=" + binDir + ":" + os.Getenv("PATH"),
		"HOME=" + sb.dir,
		"KUBECONFIG=" + filepath.Join(sb.dir, "kubeconfig"),
		"CLIENT_ID=kubernetes",
		"CLIENT_SECRET=client-secret",
	}
	return sb, is
}

// shippedConfig returns the configuration file of manifests/config.yaml with its placeholder
// issuer replaced by the test issuer (and that issuer's CA).
func shippedConfig(t *testing.T, is *issuertest.Issuer) []byte {
	t.Helper()
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(must(os.ReadFile("../../manifests/config.yaml")), &cm); err != nil {
		t.Fatal(err)
	}
	cfg := cm.Data["config.yaml"]
	if !strings.Contains(cfg, "url: https://dex.example.com/dex\n") {
		t.Fatalf("manifests/config.yaml no longer has the placeholder issuer https://dex.example.com/dex:\n%s", cfg)
	}
	return []byte(strings.Replace(cfg, "url: https://dex.example.com/dex\n",
		"url: "+is.URL+"\n    certificateAuthority: |\n"+indentPEM(is.CAPEM), 1))
}

// notRun returns why a command or example is not run, or "".
func notRun(text string, used map[string]bool) string {
	for _, n := range docsNotRun {
		if regexp.MustCompile(n.pattern).MatchString(text) {
			used[n.pattern] = true
			return n.reason
		}
	}
	return ""
}

// Rule: every command line of the docs and manifests runs as written (paths under / rewritten
// into a sandbox) and exits 0, or is listed in docsNotRun with the reason.
func TestDocumentedCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	sb, _ := newDocSandbox(t)
	cmds, exs := readDocs(t)
	used := map[string]bool{}
	var initOutput strings.Builder
	ran := 0
	for _, c := range cmds {
		prog := strings.Fields(strings.TrimPrefix(c.text, "sudo "))[0]
		if reason := notRun(c.text, used); reason != "" {
			t.Logf("not run: %s: %s (%s)", c.where, c.text, reason)
			continue
		}
		if !slices.Contains(docsRun, prog) {
			t.Errorf("%s: %q is neither run by this test nor listed in docsNotRun with a reason", c.where, c.text)
			continue
		}
		out, err := sb.run(t, c.text)
		ran++
		if err != nil {
			t.Errorf("%s: %s\nfailed: %v\n%s", c.where, c.text, err, out)
			continue
		}
		t.Logf("ran: %s: %s", c.where, c.text)
		fields := strings.Fields(c.text)
		switch {
		case slices.Contains(fields, "init"):
			initOutput.WriteString(out)
		case slices.Contains(fields, "verify"):
			if !strings.Contains(out, "result: AUTHENTICATED") {
				t.Errorf("%s: %s\ndid not authenticate the token:\n%s", c.where, c.text, out)
			}
		}
	}
	if ran < 8 {
		t.Errorf("only %d documented commands ran; the extraction is broken", ran)
	}

	// kube-apiserver's flags, as the docs show them, are the ones init prints.
	flagRE := regexp.MustCompile(`(?m)^[\s-]*(--authentication-token-webhook-[a-z-]+=\S+)`)
	for _, path := range []string{"../../README.md", "../../docs/install.md"} {
		for _, m := range flagRE.FindAllStringSubmatch(string(must(os.ReadFile(path))), -1) {
			if want := sb.rewrite(m[1]); !strings.Contains(initOutput.String(), want) {
				t.Errorf("%s shows the kube-apiserver flag %s, which init does not print:\n%s", path, m[1], initOutput.String())
			}
		}
	}

	for _, ex := range exs {
		first := strings.SplitN(ex.text, "\n", 2)[0]
		if reason := notRun(ex.lang+" "+first, used); reason != "" {
			t.Logf("not run: %s: %s (%s)", ex.where, first, reason)
			continue
		}
		checkExample(t, sb, ex)
	}
	for _, n := range docsNotRun {
		if !used[n.pattern] {
			t.Errorf("docsNotRun entry %q matches nothing in the docs any more: remove it", n.pattern)
		}
	}
}

// checkExample runs a YAML example through the binary: a configuration (whole, a jwt[] list,
// or a fragment completed with one issuer) through `mapping validate --config`, a mapping
// (a ConfigMap, its data, or one key) through `mapping validate`.
func checkExample(t *testing.T, sb *docSandbox, ex docExample) {
	t.Helper()
	const head = "apiVersion: oidc-authenticator.io/v1alpha1\nkind: AuthenticatorConfiguration\n"
	const issuer = "jwt:\n- issuer: {url: 'https://issuer.example.com', audiences: [kubernetes]}\n  claimMappings: {username: {claim: sub, prefix: ''}}\n"
	text := ex.text
	var args []string
	switch {
	case strings.HasPrefix(text, "apiVersion: oidc-authenticator.io/"):
		args = []string{"--config", "example.yaml", "manifests/mapping-example.yaml"}
	case strings.HasPrefix(text, "jwt:"):
		text = head + text
		args = []string{"--config", "example.yaml", "manifests/mapping-example.yaml"}
	case strings.HasPrefix(text, "server:"), strings.HasPrefix(text, "mapping:"), strings.HasPrefix(text, "cache:"):
		text = head + issuer + text
		args = []string{"--config", "example.yaml", "manifests/mapping-example.yaml"}
	case strings.HasPrefix(text, "- issuer:"), strings.HasPrefix(text, "claimMappings:"), strings.HasPrefix(text, "claimValidationRules:"):
		return // docs/configuration.md's fragments: webhook/config and test/reference run each one
	case strings.HasPrefix(text, "apiVersion: v1"):
		args = []string{"example.yaml"}
	case strings.HasPrefix(text, "data:"):
		text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: oidc-auth, namespace: kube-system}\n" + text
		args = []string{"example.yaml"}
	case strings.HasPrefix(text, "mapUsers:"), strings.HasPrefix(text, "mapGroups:"):
		text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: oidc-auth, namespace: kube-system}\ndata:\n  " + strings.ReplaceAll(strings.TrimSuffix(text, "\n"), "\n", "\n  ") + "\n"
		args = []string{"example.yaml"}
	default:
		t.Errorf("%s: a %s example starting %q is neither checked by this test nor listed in docsNotRun", ex.where, ex.lang, strings.SplitN(text, "\n", 2)[0])
		return
	}
	if err := os.WriteFile(filepath.Join(sb.dir, "example.yaml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := sb.run(t, "oidc-authenticator mapping validate "+strings.Join(args, " "))
	if err != nil {
		t.Errorf("%s: the example is refused: %v\n%s\n--- example ---\n%s", ex.where, err, out, text)
		return
	}
	t.Logf("checked: %s: %s example, with mapping validate %s", ex.where, ex.lang, strings.Join(args, " "))
}

// providerFixtures are id_tokens shaped as each identity provider of docs/install.md sends
// them (claims beyond iss, aud, iat and exp), with the user the guide's jwt[] entry must make.
var providerFixtures = []struct {
	section      string
	claims       map[string]any
	wantUsername string
	wantGroups   []string
	// groupsExpression, when set, replaces the entry's groups mapping, as the guide's prose
	// suggests (Keycloak's realm roles).
	groupsExpression string
	// overage, when set, is the path of a distributed groups claim's source on the test
	// issuer, answering as Microsoft Graph does without its access token.
	overage string
	// wantReason, when set, is the reason the token is not accepted.
	wantReason string
}{
	{
		section: "Dex",
		claims: map[string]any{"sub": "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs",
			"email": "alice@example.com", "email_verified": true, "groups": []any{"developers", "admins"}, "name": "alice"},
		wantUsername: "alice@example.com", wantGroups: []string{"oidc:developers", "oidc:admins"},
	},
	{
		// Keycloak: the Group Membership mapper (full path off) and realm_access.roles.
		section: "Keycloak",
		claims: map[string]any{"sub": "8b5e9f4e-2c0a-4d6e-9a3c-2f1e7d6c5b4a", "typ": "ID", "azp": "kubernetes",
			"email": "alice@example.com", "email_verified": true, "preferred_username": "alice",
			"groups": []any{"developers"}, "realm_access": map[string]any{"roles": []any{"default-roles-example", "offline_access"}}},
		wantUsername: "alice@example.com", wantGroups: []string{"oidc:developers"},
	},
	{
		section: "Keycloak",
		claims: map[string]any{"sub": "8b5e9f4e-2c0a-4d6e-9a3c-2f1e7d6c5b4a", "typ": "ID", "azp": "kubernetes",
			"email": "alice@example.com", "email_verified": true, "preferred_username": "alice",
			"realm_access": map[string]any{"roles": []any{"default-roles-example", "offline_access"}}},
		groupsExpression: "claims.realm_access.roles.map(r, 'kc:' + r)",
		wantUsername:     "alice@example.com", wantGroups: []string{"kc:default-roles-example", "kc:offline_access"},
	},
	{
		// Casdoor: the user's profile in the token, emailVerified (not email_verified), groups
		// as organization/name.
		section: "Casdoor",
		claims: map[string]any{"sub": "3f6a2c1e-8d4b-4e2a-9c7f-5b1d0e9a8c6d", "name": "alice", "owner": "example",
			"email": "alice@example.com", "emailVerified": false, "groups": []any{"example/developers"}},
		wantUsername: "casdoor:alice", wantGroups: []string{"oidc:example/developers"},
	},
	{
		// Auth0: groups in the namespaced claim the post-login Action sets.
		section: "Auth0",
		claims: map[string]any{"sub": "auth0|609d2f6c1e3b4a0069a1b2c3", "nickname": "alice",
			"email": "alice@example.com", "email_verified": true, "https://k8s.example.com/groups": []any{"k8s-admins"}},
		wantUsername: "alice@example.com", wantGroups: []string{"oidc:k8s-admins"},
	},
	{
		// Entra ID: groups as object IDs, the username from the UPN, uid from oid.
		section: "Microsoft Entra ID",
		claims: map[string]any{"sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
			"tid": "00000000-0000-0000-0000-000000000000", "preferred_username": "alice@example.com", "name": "Alice",
			"groups": []any{"2f0bd4a5-5f7e-4c84-9d3b-7b8f2a0c1e11"}, "ver": "2.0"},
		wantUsername: "entra:alice@example.com", wantGroups: []string{"oidc:2f0bd4a5-5f7e-4c84-9d3b-7b8f2a0c1e11"},
	},
	{
		// Entra ID with a groups overage: no groups claim, but a distributed claim whose source
		// is Microsoft Graph (played here by the test issuer, on loopback), which answers 401
		// without a Graph access token: the token is not accepted.
		section: "Microsoft Entra ID",
		claims: map[string]any{"sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
			"tid": "00000000-0000-0000-0000-000000000000", "preferred_username": "alice@example.com", "ver": "2.0"},
		overage:    "/v1.0/users/00000000-0000-0000-66f3-3332eca7ea81/getMemberObjects",
		wantReason: "invalid_claims",
	},
}

// Rule: each identity provider guide's jwt[] entry, with the issuer swapped for a test issuer,
// makes the documented user from a token shaped as that provider sends it; the built binary's
// verify says so.
func TestProviderGuides(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	install := string(must(os.ReadFile("../../docs/install.md")))
	entries := map[string]string{}
	for _, sec := range strings.Split(install, "\n## ")[1:] {
		name := strings.TrimSpace(strings.SplitN(sec, "\n", 2)[0])
		for _, m := range fenceRE.FindAllStringSubmatch(sec, -1) {
			if m[2] == "yaml" && strings.HasPrefix(m[3], "jwt:") {
				entries[name] = m[3]
			}
		}
	}
	bin := buildBinary(t, t.TempDir())
	is := issuertest.New(t)
	urlRE := regexp.MustCompile(`(?m)^(\s+url:) (\S+)$`)
	audRE := regexp.MustCompile(`(?m)^\s+audiences: \[([^\],]+)\]`)
	for _, fx := range providerFixtures {
		t.Run(fx.section, func(t *testing.T) {
			entry, ok := entries[fx.section]
			if !ok {
				t.Fatalf("docs/install.md has no jwt: example under ## %s", fx.section)
			}
			aud := audRE.FindStringSubmatch(entry)
			if aud == nil {
				t.Fatalf("no audiences: [...] in the %s entry:\n%s", fx.section, entry)
			}
			cfg := urlRE.ReplaceAllString(entry, "${1} "+is.URL+"\n    certificateAuthority: |\n"+strings.TrimSuffix(indentPEM(is.CAPEM), "\n"))
			if fx.groupsExpression != "" {
				cfg = regexp.MustCompile(`(?m)^(\s+)groups: \{claim: .*$`).ReplaceAllString(cfg, `${1}groups: {expression: "`+fx.groupsExpression+`"}`)
			}
			path := filepath.Join(t.TempDir(), "config.yaml")
			os.WriteFile(path, []byte("apiVersion: oidc-authenticator.io/v1alpha1\nkind: AuthenticatorConfiguration\n"+cfg), 0o600)
			claims := map[string]any{"iss": is.URL, "aud": aud[1], "iat": time.Now().Unix(), "exp": time.Now().Add(10 * time.Minute).Unix()}
			for k, v := range fx.claims {
				claims[k] = v
			}
			if fx.overage != "" {
				is.ServeSource(fx.overage, `{"error":{"code":"InvalidAuthenticationToken","message":"Access token is empty."}}`, http.StatusUnauthorized)
				claims["_claim_names"] = map[string]any{"groups": "src1"}
				claims["_claim_sources"] = map[string]any{"src1": map[string]any{"endpoint": is.URL + fx.overage}}
			}
			token := is.Sign(t, issuertest.DefaultKeyID, "RS256", claims)
			out, err := exec.Command(bin, "verify", "--config", path, "--timeout", "10s", token).CombinedOutput()
			if fx.wantReason != "" {
				if err == nil || strings.Contains(string(out), "AUTHENTICATED") || !strings.Contains(string(out), "reason: "+fx.wantReason) {
					t.Fatalf("want the token refused with %s: %v\n%s", fx.wantReason, err, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("verify: %v\n%s\n--- configuration ---\n%s", err, out, cfg)
			}
			for _, want := range []string{"result: AUTHENTICATED", "username: " + fx.wantUsername, "groups:   " + strings.Join(fx.wantGroups, ", ") + "\n"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("verify output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
