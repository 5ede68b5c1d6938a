package mapping

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Rule: the shipped example manifest is a valid mapping.
func TestShippedExample(t *testing.T) {
	b, err := os.ReadFile("../manifests/mapping-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, obj, err := ParseManifest(b, testIssuers)
	if err != nil {
		t.Fatal(err)
	}
	if obj.String() != "kube-system/oidc-auth" || m.Empty() {
		t.Errorf("object %s, mapping %+v", obj, m)
	}
}

// Rule: every mapping example in docs/mapping.md is valid, so the documentation cannot drift
// from the parser.
func TestDocumentedExamples(t *testing.T) {
	b, err := os.ReadFile("../docs/mapping.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	const header = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: oidc-auth, namespace: kube-system}\n"
	checked := 0
	for _, block := range blocks {
		text := block[1]
		switch {
		case strings.Contains(text, "kind: ConfigMap"):
		case strings.HasPrefix(text, "data:"):
			text = header + text
		case strings.HasPrefix(text, KeyUsers+":") || strings.HasPrefix(text, KeyGroups+":"):
			text = header + "data:\n  " + strings.ReplaceAll(strings.TrimSuffix(text, "\n"), "\n", "\n  ") + "\n"
		default:
			continue // not a mapping (e.g. the server configuration)
		}
		checked++
		if _, _, err := ParseManifest([]byte(text), testIssuers); err != nil {
			t.Errorf("documented example is refused: %v\n%s", err, text)
		}
	}
	if checked < 6 {
		t.Errorf("only %d mapping examples found in docs/mapping.md", checked)
	}
}
