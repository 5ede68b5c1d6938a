package mapping

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fastListCases are lists the fast reader must read as the decoder does, or leave to it.
var fastListCases = []string{
	"- subject: alice\n  username: a\n",
	"- subject: \"a b\"\n  username: 'it''s'\n  groups: [x, \"y\", 'z']\n",
	"- subject: 0a1b2c3d-1111-2222-3333-444444444444\n  groups: [g]\n",
	"- subject: 12345\n  username: x\n",
	"- subject: 1_000\n  username: x\n",
	"- subject: 0x1F\n  username: x\n",
	"- subject: 1e5\n  username: x\n",
	"- subject: 2001-12-14\n  username: x\n",
	"- subject: 99999999999999999999\n  username: x\n",
	"- subject: yes\n  username: No\n",
	"- subject: On\n  username: x\n",
	"- subject: null\n  username: x\n",
	"- subject: ~\n  username: x\n",
	"- subject: .inf\n  username: x\n",
	"- subject: a # comment\n  username: b#c\n  groups: [a, b] # c\n",
	"# head\n\n- subject: a\n\n  # between\n  username: b\n",
	"- subject: a\n  groups:\n  - x\n  - 'y'\n- subject: b\n  groups:\n    - z\n",
	"- subject: a\n  groups:\n- subject: b\n  groups: [z]\n",
	"- subject: a\n  groups: []\n",
	"- subject: a\n  groups: [ ]\n",
	"- subject: a\n  groups: [a,]\n",
	"- subject: a\n  groups: [a, [b]]\n",
	"- subject: a\n  groups: [a:b]\n",
	"- subject: a\n  groups: [a b, c]\n",
	"- subject: a\n  groups: [system:masters, a?b, a:?b, a:]\n",
	"- subject: a\n  groups: [a?b]\n",
	"- subject: a\n  groups: [system:masters]\n",
	"- subject: a:b\n  username: http://x\n",
	"- subject: a: b\n  username: x\n",
	"- subject: a:\n  username: x\n",
	"- subject: \"a\\nb\"\n  username: x\n",
	"- subject: \"a\"b\n  username: x\n",
	"- subject: \"a\"#b\n  username: x\n",
	"- subject: 'a\n  username: x\n",
	"- subject: a\n    b\n  username: x\n",
	"- subject: a\n  username: x\n  username: y\n",
	"- subject: a\n  usernme: x\n",
	"- subject: a\n  group: x\n",
	"- subject: a\n\tusername: x\n",
	"- subject: a\r\n  username: x\r\n",
	"- subject: a\n  username: x\n---\n- subject: b\n",
	"---\n- subject: a\n  username: x\n",
	"- &a subject: a\n  username: x\n",
	"- subject: *a\n  username: x\n",
	"- {subject: a, username: x}\n",
	"-\n  subject: a\n  username: x\n",
	"- subject: a\n  username: |\n    x\n",
	"- subject: a\n  username: >\n    x\n",
	"- subject: \"\"\n  username: ''\n",
	"- subject: a\n  username: \"{{email}}\"\n",
	"- subject: a\n  username: dex:{{email}}\n",
	"- subject: a\n  username: \"\u00e9\u2028\"\n",
	"- subject: a\n  username: \ufeffx\n",
	"- subject: a\n  username: x\n- subject: a\n  username: y\n",
	"- issuer: https://dex.example.com/dex\n  email: a@example.com\n  username: x\n",
	"- email: a\n  username: x\n",
	"- expression: \"claims.sub == 'a'\"\n  username: x\n",
	"- expression: claims.sub == 'a'\n  username: x\n",
	"  - subject: a\n    username: x\n",
	"- subject: a\n  username: x",
	"- subject:a\n",
	"- subject :a\n",
	"- \"subject\": a\n  username: x\n",
	"- group: g\n  groups: [x]\n- group: g\n  groups: [y]\n",
	"- group: g\n  groups:\n    - x\n   - y\n",
	"- group: g\n  groups:\n    - x\n  - y\n",
	"- group: g\n  groups: x\n",
	"- group: true\n  groups: [1, yes]\n",
}

// slowParse parses parts as ParseSet did before the fast reader: by blocks of entries, or
// whole.
func slowParse(parts []Part, opts ParseOptions) (*Mapping, error) {
	m, err, ok := parseSet(parts, opts, readBlocks)
	if !ok {
		m, err, _ = parseSet(parts, opts, readWhole)
	}
	return m, err
}

// checkFastAgrees fails unless Parse gives the same mapping, or the same problems, as the
// decoder alone, and unless every list the fast reader accepts holds the entries the decoder
// reads.
func checkFastAgrees(t *testing.T, users, groups string) {
	t.Helper()
	parts := []Part{{Data: map[string]string{KeyUsers: users, KeyGroups: groups}}}
	opts := ParseOptions{Issuers: testIssuers}
	m, err := ParseSet(parts, opts)
	sm, serr := slowParse(parts, opts)
	if fmt.Sprint(err) != fmt.Sprint(serr) {
		t.Fatalf("users %q groups %q:\nfast: %v\nslow: %v", users, groups, err, serr)
	}
	if err == nil && (!reflect.DeepEqual(m.Users, sm.Users) || !reflect.DeepEqual(m.Groups, sm.Groups)) {
		t.Fatalf("users %q groups %q:\nfast: %+v %+v\nslow: %+v %+v", users, groups, m.Users, m.Groups, sm.Users, sm.Groups)
	}
	for _, list := range []struct {
		key, value string
		fields     []string
	}{{KeyUsers, users, userFields}, {KeyGroups, groups, groupFields}} {
		var fast []string // described as read: the fields' memory is used again
		if !eachFastEntry(list.value, list.fields, func(_ int, e rawEntry) { fast = append(fast, describeRaw(e)) }) {
			continue
		}
		p := newParser(testIssuers)
		items, repeated := p.decodeList(list.key, list.value)
		if len(p.problems) > 0 || len(items) != len(fast) {
			t.Fatalf("%q: the fast reader read %d entries, the decoder %d, with problems %v", list.value, len(fast), len(items), p.problems)
		}
		for i, item := range items {
			var rep []string
			if i < len(repeated) {
				rep = repeated[i]
			}
			if got, want := fast[i], describeRaw(rawEntryOf(item, rep)); got != want {
				t.Fatalf("%q: entry %d read fast as %s, by the decoder as %s", list.value, i, got, want)
			}
		}
	}
}

// describeRaw prints an entry as read, its fields in order of name.
func describeRaw(e rawEntry) string {
	fields := slices.Clone(e.fields)
	slices.SortFunc(fields, func(a, b rawField) int { return strings.Compare(a.name, b.name) })
	var b strings.Builder
	fmt.Fprintf(&b, "%s nil=%t repeated %q {", e.kind, e.fields == nil, e.repeated)
	for _, f := range fields {
		fmt.Fprintf(&b, "%s: %s; ", f.name, describeValue(f.rawValue))
	}
	return b.String() + "}"
}

func describeValue(v rawValue) string {
	s := fmt.Sprintf("%s %q err %v", v.kind, v.text, v.err)
	if v.kind == "a list" {
		s += fmt.Sprintf(" items %d [", len(v.items))
		for _, item := range v.items {
			s += describeValue(item) + ", "
		}
		s += "]"
	}
	return s
}

// Rule: the fast reader reads a list exactly as the decoder does, and leaves to the decoder
// every list it cannot read so: Parse gives the same mapping, or the same problems, with and
// without it.
func TestFastListAgrees(t *testing.T) {
	accepted := 0
	for _, users := range fastListCases {
		checkFastAgrees(t, users, "")
		groups := strings.NewReplacer("subject:", "group:", "username:", "groups:").Replace(users)
		checkFastAgrees(t, "", groups)
		if eachFastEntry(users, userFields, func(int, rawEntry) {}) {
			accepted++
		}
	}
	if accepted < 10 {
		t.Fatalf("the fast reader accepted only %d of the lists", accepted)
	}
	// The lists of the tests' and the benchmarks' manifests are read fast.
	for _, b := range [][]byte{[]byte(manifest), scaleMapping(100, 0), bigMapping(100)} {
		in, err := DecodeManifest(b)
		if err != nil {
			t.Fatal(err)
		}
		if !eachFastEntry(in.Data[KeyUsers], userFields, func(int, rawEntry) {}) ||
			in.Data[KeyGroups] != "" && !eachFastEntry(in.Data[KeyGroups], groupFields, func(int, rawEntry) {}) {
			t.Fatalf("the fast reader gave up on %q", b[:min(len(b), 300)])
		}
		checkFastAgrees(t, in.Data[KeyUsers], in.Data[KeyGroups])
	}
}

// FuzzFastList checks that Parse gives the same result with the fast reader as without.
func FuzzFastList(f *testing.F) {
	for _, c := range fastListCases {
		f.Add(c, "- group: g\n  groups: [x]\n")
	}
	f.Fuzz(func(t *testing.T, users, groups string) {
		checkFastAgrees(t, users, groups)
	})
}
