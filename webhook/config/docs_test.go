package config_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
)

// DocumentedEntries returns the jwt[] entries of the YAML examples in docs/configuration.md,
// each as a whole configuration file. An example that is a fragment of an entry
// (claimMappings:, claimValidationRules:, ...) is completed with an issuer and, when it has
// no claimMappings, a username claim. test/reference reads the same examples.
func documentedEntries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		text := m[1]
		if !strings.HasPrefix(text, "- issuer:") {
			body := "  " + strings.ReplaceAll(strings.TrimSuffix(text, "\n"), "\n", "\n  ") + "\n"
			if !strings.Contains(text, "claimMappings:") {
				body += "  claimMappings:\n    username: {claim: sub, prefix: \"\"}\n"
			}
			text = "- issuer:\n    url: https://issuer.example.com\n    audiences: [kubernetes]\n" + body
		}
		out = append(out, "apiVersion: oidc-authenticator.io/v1alpha1\nkind: AuthenticatorConfiguration\njwt:\n"+text)
	}
	return out
}

// Rule: every example in docs/configuration.md is a valid configuration, so the
// documentation cannot drift from the validation.
func TestDocumentedExamples(t *testing.T) {
	entries := documentedEntries(t)
	if len(entries) < 10 {
		t.Fatalf("only %d examples found in docs/configuration.md", len(entries))
	}
	for _, e := range entries {
		if _, err := config.Parse([]byte(e)); err != nil {
			t.Errorf("documented example is refused: %v\n%s", err, e)
		}
	}
}
