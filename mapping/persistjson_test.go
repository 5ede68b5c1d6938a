package mapping

import (
	"bytes"
	"encoding/json"
	"testing"
)

// checkEncodePersisted fails unless encodePersisted writes what json.Marshal does.
func checkEncodePersisted(t *testing.T, p persisted) {
	t.Helper()
	got, err := encodePersisted(p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%+v:\nencoded %s\njson    %s", p, got, want)
	}
}

// Rule: the kept copy is written exactly as json.Marshal writes it.
func TestEncodePersistedIsJSONMarshal(t *testing.T) {
	for _, p := range []persisted{
		{},
		{Version: "v1", Data: map[string]string{}},
		{Version: "abc", Data: map[string]string{KeyUsers: goodV1, KeyGroups: "- group: \"<&>\"\n\tgroups: ['\\x']\r\n", "z": "\x00\x01\x1f\x7f\b\f é \u2028\u2029 \u2027 😀"}, BinaryData: []string{"b", "a<"}},
		{Version: "bad \xff", Data: map[string]string{"k": "v"}},
		{Version: "v", Data: map[string]string{"k": "bad \xe2\x80"}},
		{Version: "v", Parts: []Part{{Name: "ns/a", Data: map[string]string{"k": "v"}}}},
		{Version: "v", Data: map[string]string{KeyUsers: string(scaleMapping(100, 0))}},
	} {
		checkEncodePersisted(t, p)
	}
}

// FuzzEncodePersisted checks that encodePersisted writes what json.Marshal does.
func FuzzEncodePersisted(f *testing.F) {
	f.Add("v1", "mapUsers", goodV1, "")
	f.Add("v", "k", "\x00<\u2028\xff", "b")
	f.Fuzz(func(t *testing.T, version, key, value, binary string) {
		p := persisted{Version: version, Data: map[string]string{key: value, "x" + key: value + key}}
		if binary != "" {
			p.BinaryData = []string{binary}
		}
		checkEncodePersisted(t, p)
	})
}
