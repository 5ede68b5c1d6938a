package mapping

import (
	"reflect"
	"strings"
	"testing"
)

// fastManifestCases are manifests the fast reader must read as the decoder does, or leave to
// it.
var fastManifestCases = []string{
	"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\n  namespace: kube-system\ndata:\n  mapUsers: |\n    - subject: a\n      username: x\n  mapGroups: |\n    - group: g\n      groups: [x]\n",
	"# head\napiVersion: \"v1\"\nkind: 'ConfigMap'\nmetadata:\n  name: m # c\ndata:\n  mapUsers: |-\n    - subject: a\n\n      username: x\n\n\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: | # c\n    a\n      b\n        \n   \n    c\n  \n# tail\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |\n    a\n    b",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |\n    a\n  mapGroups: \"\"\n  other: x\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |\n\n    a\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |\n  a\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |\n    a\n   b\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |\n     a\n    b\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |+\n    a\n\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |2\n      a\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: >\n    a\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |\n    a\n  mapUsers: |\n    b\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers:\n    - subject: a\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: 12\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  yes: a\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n",
	"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\n  labels:\n    a: b\ndata:\n  mapUsers: |\n    a\n",
	"apiVersion: v1\nkind: ConfigMap\nbinaryData:\n  a: YQ==\n",
	"apiVersion: v2\nkind: ConfigMap\ndata:\n  mapUsers: |\n    a\n",
	"apiVersion: v1\nkind: Secret\ndata:\n  mapUsers: |\n    a\n",
	"apiVersion: v1\nkind: ConfigMap\nkind: ConfigMap\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |\n    a\n---\n",
	"---\napiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |\n    a\n",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |\n    a\tb\n",
	"apiVersion: v1\r\nkind: ConfigMap\r\n",
	"{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"data\": {\"mapUsers\": \"a\"}}",
	"apiVersion: v1\nkind: ConfigMap\ndata:\n  mapUsers: |\n    - subject: \"\u00e9\"\n",
}

// checkFastManifestAgrees fails unless a manifest the fast reader accepts is one the decoder
// reads the same.
func checkFastManifestAgrees(t *testing.T, b []byte) {
	t.Helper()
	fast, ok := decodeFastManifest(b)
	if !ok {
		return
	}
	slow, ok := decodeValidManifest(b)
	if !ok {
		t.Fatalf("%q: the fast reader accepted a manifest the decoder refuses", b)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q: read fast as %#v, by the decoder as %#v", b, fast, slow)
	}
}

// Rule: the fast reader reads a manifest exactly as the decoder does, and leaves to the
// decoder every manifest it cannot read so.
func TestFastManifestAgrees(t *testing.T) {
	accepted := 0
	for _, c := range append(fastManifestCases, manifest, string(scaleMapping(100, 0)), string(bigMapping(100))) {
		checkFastManifestAgrees(t, []byte(c))
		if _, ok := decodeFastManifest([]byte(c)); ok {
			accepted++
		}
	}
	if accepted < 5 {
		t.Fatalf("the fast reader accepted only %d of the manifests", accepted)
	}
	for _, c := range []string{manifest, string(scaleMapping(100, 0))} {
		if _, ok := decodeFastManifest([]byte(c)); !ok {
			t.Fatalf("the fast reader gave up on %q", c[:min(len(c), 200)])
		}
	}
	if strings.Contains(manifest, "\t") {
		t.Fatal("the test manifest holds a tab")
	}
}

// FuzzFastManifest checks that the fast reader reads every manifest it accepts as the decoder
// does.
func FuzzFastManifest(f *testing.F) {
	for _, c := range fastManifestCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastManifestAgrees(t, b)
	})
}
