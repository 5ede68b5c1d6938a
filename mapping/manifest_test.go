package mapping

import (
	"errors"
	"strings"
	"testing"
)

const manifest = `apiVersion: v1
kind: ConfigMap
metadata:
  name: oidc-auth
  namespace: kube-system
data:
  mapUsers: |
    - email: alice@example.com
      username: alice
      groups: [system:masters]
  mapGroups: |
    - group: developers
      groups: [dev-team]
`

func TestParseManifest(t *testing.T) {
	tests := []struct {
		rule      string
		manifest  string
		wantUsers int
		wantErr   string
	}{
		{rule: "a YAML ConfigMap manifest", manifest: manifest, wantUsers: 1},
		{rule: "a leading document marker and a trailing one are one document", manifest: "---\n" + manifest + "---\n", wantUsers: 1},
		{
			rule:      "a JSON ConfigMap manifest",
			manifest:  `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"oidc-auth","namespace":"kube-system"},"data":{"mapUsers":"- {subject: a, username: x}"}}`,
			wantUsers: 1,
		},
		{rule: "a ConfigMap without data is an empty mapping", manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: oidc-auth, namespace: kube-system}\n"},
		{rule: "another kind is refused", manifest: strings.Replace(manifest, "kind: ConfigMap", "kind: Secret", 1), wantErr: `kind "Secret"; it must be a ConfigMap`},
		{rule: "another apiVersion is refused", manifest: strings.Replace(manifest, "apiVersion: v1", "apiVersion: v2", 1), wantErr: `apiVersion "v2"`},
		{rule: "binaryData is refused", manifest: manifest + "binaryData:\n  x: aGVsbG8=\n", wantErr: "binaryData is not read"},
		{
			rule:     "data written as YAML instead of a string is refused with a hint",
			manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: oidc-auth, namespace: kube-system}\ndata:\n  mapUsers:\n    - subject: a\n      username: x\n",
			wantErr:  `data.mapUsers is a list; it must be a string holding YAML: write "mapUsers: |"`,
		},
		{rule: "an unknown top-level field is refused", manifest: manifest + "spec: {}\n", wantErr: `unknown field "spec"`},
		{rule: "a second object in the file is refused", manifest: manifest + "---\n" + manifest, wantErr: "holds 2 YAML documents"},
		{rule: "an empty file is refused", manifest: "\n", wantErr: "the manifest is empty"},
		{rule: "a file that is not YAML is refused", manifest: "{not: yaml: at all", wantErr: "not valid YAML or JSON"},
		{rule: "invalid mapping data is refused with the precise problem", manifest: strings.Replace(manifest, "username: alice", "userName: alice", 1), wantErr: "mapUsers[0].userName: unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			m, obj, err := ParseManifest([]byte(tt.manifest), testIssuers)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if obj != (Object{Namespace: "kube-system", Name: "oidc-auth"}) || obj.String() != "kube-system/oidc-auth" {
				t.Errorf("object = %+v", obj)
			}
			if len(m.Users) != tt.wantUsers {
				t.Errorf("%d users, want %d", len(m.Users), tt.wantUsers)
			}
		})
	}
}

// Rule: a manifest whose data is invalid still names the ConfigMap, and the error lists the
// problems as an *InvalidError.
func TestParseManifestNamesTheObject(t *testing.T) {
	bad := strings.Replace(manifest, "groups: [dev-team]", "groups: dev-team", 1)
	_, obj, err := ParseManifest([]byte(bad), testIssuers)
	var inv *InvalidError
	if !errors.As(err, &inv) || inv.Problems[0].Field != "mapGroups[0].groups" {
		t.Fatalf("err = %v", err)
	}
	if obj.String() != "kube-system/oidc-auth" {
		t.Errorf("object = %q", obj)
	}
}

// Rule: binaryData is one problem among the others: the whole version is still checked and
// every problem is reported at once, binaryData first.
func TestParseManifestBinaryDataWithOtherProblems(t *testing.T) {
	bad := strings.Replace(manifest, "groups: [dev-team]", "groups: dev-team", 1) + "binaryData:\n  mapUsers: aGVsbG8=\n  x: aGVsbG8=\n"
	_, obj, err := ParseManifest([]byte(bad), testIssuers)
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v, want an *InvalidError", err)
	}
	var fields []string
	for _, p := range inv.Problems {
		fields = append(fields, p.Field)
	}
	want := []string{"binaryData.mapUsers", "binaryData.x", "mapGroups[0].groups"}
	if strings.Join(fields, " ") != strings.Join(want, " ") {
		t.Errorf("problems at %q, want %q (%v)", fields, want, err)
	}
	if obj.String() != "kube-system/oidc-auth" {
		t.Errorf("object = %q", obj)
	}
}

// Rule: with AnyIssuer, an issuer field is accepted whatever it names (offline validation
// without the server's configuration); without it, an unknown issuer is a problem.
func TestParseWithAnyIssuer(t *testing.T) {
	data := map[string]string{KeyUsers: "- issuer: https://elsewhere.example.com\n  email: a@example.com\n  groups: [g]\n"}
	if _, err := ParseWith(data, ParseOptions{AnyIssuer: true}); err != nil {
		t.Fatalf("AnyIssuer: %v", err)
	}
	_, err := ParseWith(data, ParseOptions{Issuers: testIssuers})
	if err == nil || !strings.Contains(err.Error(), "mapUsers[0].issuer") {
		t.Fatalf("err = %v, want the issuer refused", err)
	}
	// AnyIssuer still checks that the field is a string.
	data[KeyUsers] = "- issuer: [x]\n  email: a@example.com\n  groups: [g]\n"
	if _, err := ParseWith(data, ParseOptions{AnyIssuer: true}); err == nil || !strings.Contains(err.Error(), "mapUsers[0].issuer") {
		t.Fatalf("err = %v, want a list issuer refused", err)
	}
}
