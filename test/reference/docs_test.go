package reference

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apiserver/pkg/apis/apiserver/validation"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
)

// Rule: every jwt[] example in docs/configuration.md is accepted by kube-apiserver's
// validation too, so that the documented entries can be copied to --authentication-config.
// The examples are completed as webhook/config's TestDocumentedExamples completes them.
func TestDocumentedExamplesAcceptedByKubeAPIServer(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	compiler := authenticationcel.NewDefaultCompiler()
	checked := 0
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		text := m[1]
		if !strings.HasPrefix(text, "- issuer:") {
			body := "  " + strings.ReplaceAll(strings.TrimSuffix(text, "\n"), "\n", "\n  ") + "\n"
			if !strings.Contains(text, "claimMappings:") {
				body += "  claimMappings:\n    username: {claim: sub, prefix: \"\"}\n"
			}
			text = "- issuer:\n    url: https://issuer.example.com\n    audiences: [kubernetes]\n" + body
		}
		cfg, err := config.Parse([]byte("apiVersion: oidc-authenticator.io/v1alpha1\nkind: AuthenticatorConfiguration\njwt:\n" + text))
		if err != nil {
			t.Errorf("our validation refuses the example: %v\n%s", err, text)
			continue
		}
		checked++
		if _, errs := validation.CompileAndValidateJWTAuthenticator(compiler, toAPIServer(cfg.JWT[0]), nil); len(errs) > 0 {
			t.Errorf("kube-apiserver refuses the example: %v\n%s", errs.ToAggregate(), text)
		}
	}
	if checked < 10 {
		t.Fatalf("only %d examples checked", checked)
	}
}
