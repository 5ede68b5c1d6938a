package webhook

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Groups read in both log formats as they did with slog.Any: [a b] in text, a list in JSON.
func TestGroupListLogs(t *testing.T) {
	groups := groupList{"oidc:dev", "team a"}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("x", "groups", groups)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("x", "groups", groups)
	if want := `groups="[oidc:dev team a]"`; !strings.Contains(text.String(), want) {
		t.Errorf("text: want %s in %s", want, text.String())
	}
	if want := `"groups":["oidc:dev","team a"]`; !strings.Contains(js.String(), want) {
		t.Errorf("json: want %s in %s", want, js.String())
	}
}
