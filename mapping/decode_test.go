package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// wholeItems decodes value whole, as decodeList does when it cannot go an entry at a time;
// ok is false when the strict decoder refuses it or it holds more than one document.
func wholeItems(value string) ([]json.RawMessage, bool) {
	j, err := yaml.YAMLToJSONStrict([]byte(value))
	if err != nil {
		return nil, false
	}
	if _, docs := scanYAML(value); docs > 1 {
		return nil, false
	}
	var items []json.RawMessage
	if json.Unmarshal(bytes.TrimSpace(j), &items) != nil {
		return nil, false
	}
	return items, true
}

// checkEntryAtATime fails when decoding value an entry at a time accepts what decoding it
// whole refuses, or gives other items.
func checkEntryAtATime(t *testing.T, value string) (decoded bool) {
	t.Helper()
	items, ok := decodeEntries(value)
	if !ok {
		return false
	}
	whole, wholeOK := wholeItems(value)
	if !wholeOK {
		t.Fatalf("%q: decoded an entry at a time, refused whole", value)
	}
	if len(items) != len(whole) {
		t.Fatalf("%q: %d items an entry at a time, %d whole", value, len(items), len(whole))
	}
	for i := range items {
		if !bytes.Equal(items[i], whole[i]) {
			t.Fatalf("%q: item %d is %s an entry at a time, %s whole", value, i, items[i], whole[i])
		}
	}
	return true
}

var entryAtATimeSeeds = []string{
	"- subject: a\n  username: x\n- email: b@example.com\n  groups: [g]\n",
	"# a comment\n\n- subject: a\n  username: x\n# between\n-\n  subject: b\n  username: y\n",
	"- subject: a\n  username: |\n    multi\n    line\n- group: g\n  groups:\n  - one\n  - two\n",
	"- {subject: a, username: x}\n- [1, 2]\n- plain\n- 'quoted'\n",
	"- &a {subject: x, username: y}\n- *a\n",       // an alias across entries
	"- subject: a\n  username: x\n  username: y\n", // a key set twice
	"- \"abc\n- def\"\n",                // a quoted scalar across lines
	"- [a,\n- b]\n",                     // a flow list across lines
	"- subject: a\n---\n- subject: b\n", // two documents
	"key: value\n",                      // not a list
	"  - subject: a\n    username: x\n", // an indented list
	"- subject: a\nusername: x\n",       // a mapping key at column 0
	"- subject: a\r\n  username: x\r\n- subject: b\r\n  username: y\r\n", // CRLF
	"- subject: a\n\t username: x\n",                                     // a tab
	"-\n- \n- ~\n",
	"- a: |\n   x\n# c\n   y\n",
	"---\n- subject: a\n  username: x\n",          // a document start
	"# c\n---\n- subject: a\n---\n- subject: b\n", // two documents
	"- subject: a\n---\n",                         // a marker after the list
	"---   \n- a\n",
}

// Decoding a list an entry at a time gives exactly what decoding it whole gives, and leaves
// to whole decoding whatever it cannot split safely.
func TestDecodeEntryAtATime(t *testing.T) {
	decoded := 0
	for _, v := range entryAtATimeSeeds {
		if checkEntryAtATime(t, v) {
			decoded++
		}
	}
	if decoded < 5 {
		t.Fatalf("only %d of the seeds were decoded an entry at a time", decoded)
	}
	if _, ok := decodeEntries(strings.Repeat("- subject: a\n  username: x\n", 3)); !ok {
		t.Fatal("a plain block list was not decoded an entry at a time")
	}
}

func FuzzDecodeEntryAtATime(f *testing.F) {
	for _, v := range entryAtATimeSeeds {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, value string) { checkEntryAtATime(t, value) })
}

// A list decoded by blocks of entries that meets a block it cannot decode alone is parsed
// again whole: the problems are those of the whole list, once, and an alias of an anchor in
// another block is read as the whole list reads it.
func TestParseFallsBackToTheWholeList(t *testing.T) {
	var users strings.Builder
	for i := range 3 * entriesPerDecode {
		if i == 2*entriesPerDecode+5 {
			users.WriteString("- subject: twice\n  username: a\n  username: b\n")
			continue
		}
		fmt.Fprintf(&users, "- subject: user-%d\n  username: u%d\n", i, i)
	}
	_, err := Parse(map[string]string{KeyUsers: users.String()}, testIssuers)
	var inv *InvalidError
	if !errors.As(err, &inv) || len(inv.Problems) != 1 ||
		inv.Problems[0].Field != fmt.Sprintf("mapUsers[%d].username", 2*entriesPerDecode+5) || !strings.Contains(inv.Problems[0].Detail, "set more than once") {
		t.Fatalf("want one problem, the key set twice; got %v", err)
	}

	aliased := "- {subject: alice-sub, username: alice, groups: &admins [g1, g2]}\n"
	for i := range entriesPerDecode + 1 {
		aliased += fmt.Sprintf("- {subject: s%d, username: u%d}\n", i, i)
	}
	aliased += "- {subject: bob-sub, username: bob, groups: *admins}\n"
	m, err := Parse(map[string]string{KeyUsers: aliased}, testIssuers)
	if err != nil {
		t.Fatal(err)
	}
	if last := m.Users[len(m.Users)-1]; last.Subject != "bob-sub" || len(last.Groups) != 2 || last.Groups[1] != "g2" {
		t.Fatalf("the entry with the alias: %+v", last)
	}
}
