package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/expression"
)

// Parse validates ConfigMap data: the keys mapUsers and mapGroups, each a YAML list held as a
// string. Both absent or empty is an empty mapping; any other key is an error. Entries are
// checked against the configured issuer URLs.
//
// Parse reports every problem at once, each naming the key, entry index and field, as an
// *InvalidError. It never returns a partial mapping.
func Parse(data map[string]string, issuers []string) (*Mapping, error) {
	return ParseWith(data, ParseOptions{Issuers: issuers})
}

// ParseOptions says what ParseWith checks besides the data itself.
type ParseOptions struct {
	// Issuers are the configured issuer URLs an entry's issuer field may name.
	Issuers []string
	// AnyIssuer accepts every issuer field that is a string, whatever Issuers holds: for
	// checking a mapping offline without the server's configuration.
	AnyIssuer bool
	// BinaryData are the keys the ConfigMap holds under binaryData, each reported as a
	// problem (the mapping is only read from data).
	BinaryData []string
}

// ParseWith is Parse with options. Like Parse, it reports every problem at once.
func ParseWith(data map[string]string, opts ParseOptions) (*Mapping, error) {
	return ParseSet([]Part{{Data: data, BinaryData: opts.BinaryData}}, opts)
}

// Part is one ConfigMap of a mapping made of several.
type Part struct {
	// Name names the ConfigMap in problems and matches: namespace/name, e.g.
	// kube-system/oidc-auth-1; "" for a mapping of one part.
	Name string
	// Data and BinaryData are the ConfigMap's, as in Snapshot.
	Data       map[string]string
	BinaryData []string
}

// ParseSet validates a mapping made of several ConfigMaps, in the order given, as one: their
// mapUsers lists, then their mapGroups lists, one after the other. An entry keeps its index
// within its own ConfigMap, and its problems and matches name the ConfigMap; two entries for
// the same identity are refused whether they are in one ConfigMap or in two. opts.BinaryData
// is ignored: each part has its own. Like Parse, it reports every problem at once, and never
// returns a partial mapping.
func ParseSet(parts []Part, opts ParseOptions) (*Mapping, error) {
	// A list that the fast reader gives up on is parsed again, every list decoded by blocks of
	// entries; and if a block did not decode alone, parsed again with each list decoded whole.
	for mode := readFast; ; mode++ {
		if m, err, ok := parseSet(parts, opts, mode); ok || mode == readWhole {
			return m, err
		}
	}
}

// How parseSet reads the lists.
const (
	// readFast reads each list with eachFastEntry.
	readFast = iota
	// readBlocks decodes each list by blocks of entries when it can (eachEntryBlock), whole
	// otherwise.
	readBlocks
	// readWhole decodes each list whole.
	readWhole
)

// parseSet is ParseSet, reading the lists as mode says; ok is false when it had to stop
// because a list could not be read so (see parseData).
func parseSet(parts []Part, opts ParseOptions, mode int) (_ *Mapping, _ error, ok bool) {
	p := newParser(opts.Issuers)
	p.anyIssuer = opts.AnyIssuer
	p.mode = mode
	m := &Mapping{
		bySubject: map[identityKey]int{},
		byEmail:   map[identityKey]int{},
		byGroup:   map[string][]int{},
	}
	// Room for the entries up front: growing slices of 50,000 entries copies them over and
	// over. Lines starting with "- " are an estimate, exact for the usual shape.
	var users, groups int
	for _, part := range parts {
		users += countEntryLines(part.Data[KeyUsers])
		groups += countEntryLines(part.Data[KeyGroups])
	}
	m.Users = make([]UserEntry, 0, users)
	m.usernames = make([]*template, 0, users)
	m.Groups = make([]GroupEntry, 0, groups)
	for _, part := range parts {
		if part.Name != "" {
			m.parts = append(m.parts, partStart{name: part.Name, users: len(m.Users), groups: len(m.Groups)})
		}
		before := len(p.problems)
		p.part = part.Name
		if !p.parseData(m, part.Data, part.BinaryData) {
			return nil, nil, false
		}
		for i := before; i < len(p.problems); i++ {
			p.problems[i].ConfigMap = part.Name
		}
	}
	if len(p.problems) > 0 {
		return nil, &InvalidError{Problems: p.problems}, true
	}
	return m, nil, true
}

// countEntryLines counts the lines of a list that start with "- ".
func countEntryLines(value string) int {
	n := strings.Count(value, "\n- ")
	if strings.HasPrefix(value, "- ") {
		n++
	}
	return n
}

// parseData validates the data of one ConfigMap and adds its entries to m. It reports false
// when a list could not be read as p.mode says: not by the fast reader (readFast), or a block
// of entries did not decode alone (readBlocks); the parse must start again in the next mode.
func (p *parser) parseData(m *Mapping, data map[string]string, binaryData []string) bool {
	for _, k := range slices.Sorted(slices.Values(binaryData)) {
		p.problems.add("binaryData."+k, "binaryData is not read; put %s and %s under data, as YAML strings", KeyUsers, KeyGroups)
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k != KeyUsers && k != KeyGroups {
			p.problems.add(k, "%s", unknownKey(k))
		}
	}
	for _, key := range []string{KeyUsers, KeyGroups} {
		value := data[key]
		before := len(p.problems)
		entry := func(i int, e rawEntry) {
			if key == KeyUsers {
				p.userEntry(m, i, e)
			} else {
				p.groupEntry(m, i, e)
			}
		}
		if p.mode == readFast && strings.TrimSpace(value) != "" {
			fields := userFields
			if key == KeyGroups {
				fields = groupFields
			}
			if !eachFastEntry(value, fields, entry) {
				return false
			}
			continue // the fast reader accepts only what the strict decoder does
		}
		split, ok := false, false
		if p.mode == readBlocks && strings.TrimSpace(value) != "" {
			split, ok = eachEntryBlock(value, func(first int, items []json.RawMessage) {
				for i, item := range items {
					entry(first+i, rawEntryOf(item, nil))
				}
			})
			if split && !ok {
				return false
			}
		}
		strict := split
		if !split {
			items, repeated := p.decodeList(key, value)
			for i, item := range items {
				var rep []string
				if i < len(repeated) {
					rep = repeated[i]
				}
				entry(i, rawEntryOf(item, rep))
			}
		}
		// The checks above find every field set twice in an entry; this catches anything
		// else the strict YAML decoder refuses, so that nothing it rejects is accepted.
		if !strict && len(p.problems) == before && strings.TrimSpace(value) != "" {
			if _, err := yaml.YAMLToJSONStrict([]byte(value)); err != nil {
				p.problems.add(key, "%s", strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "))
			}
		}
	}
	return true
}

// parser holds what validation needs across entries.
type parser struct {
	issuers   []string
	anyIssuer bool
	problems  problems
	// part names the ConfigMap being parsed, "" for a mapping of one.
	part string
	// mode says how the lists are read: readFast, readBlocks or readWhole.
	mode int
	// seen remembers, per kind of identity ("subject", "email", "group", and the expressions
	// of each list) and value, the entries already claiming it, to refuse overlapping entries.
	seen map[string]map[string][]claimant
	// compiler compiles expressions; built on the first one, so that a mapping without
	// expressions never pays for the CEL environment.
	compiler    *expression.Compiler
	compilerErr error
}

// claimant is an earlier entry mapping some value.
type claimant struct {
	issuer string
	path   string
}

func newParser(issuers []string) *parser {
	return &parser{issuers: issuers, seen: map[string]map[string][]claimant{}}
}

// rawEntry is one element of a list, before validation.
type rawEntry struct {
	// fields is nil when the element is not a mapping.
	fields []rawField
	// kind describes an element that is not a mapping.
	kind string
	// repeated lists the fields set more than once in the element.
	repeated []string
}

// rawField is one field of an element, before validation.
type rawField struct {
	name string
	rawValue
}

// rawValue is a value as read, before validation: its kind as jsonKindOf names it, and, for
// a string or a list, what it holds.
type rawValue struct {
	kind string
	// text is the value of a string.
	text string
	// items are the elements of a list.
	items []rawValue
	// err says why a string or a list could not be read.
	err error
}

// field returns the field called name, if the element has it.
func (e rawEntry) field(name string) (rawValue, bool) {
	for _, f := range e.fields {
		if f.name == name {
			return f.rawValue, true
		}
	}
	return rawValue{}, false
}

// rawValueOf reads a value converted to JSON.
func rawValueOf(raw json.RawMessage) rawValue {
	v := rawValue{kind: jsonKindOf(raw)}
	switch v.kind {
	case "a string":
		v.err = json.Unmarshal(raw, &v.text)
	case "a list":
		var items []json.RawMessage
		if v.err = json.Unmarshal(raw, &items); v.err == nil {
			v.items = make([]rawValue, len(items))
			for i, item := range items {
				v.items[i] = rawValueOf(item)
			}
		}
	}
	return v
}

// decodeList turns the YAML list held by a data key into its items, as JSON, and the fields
// each sets more than once, decoding it whole. Problems with the list as a whole are recorded
// against the key, and then no items are returned.
func (p *parser) decodeList(key, value string) (items []json.RawMessage, repeated [][]string) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	j, err := yaml.YAMLToJSON([]byte(value))
	if err != nil {
		p.problems.add(key, "is not valid YAML (line numbers count from the first line of %s): %s",
			key, strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "))
		return nil, nil
	}
	repeated, docs := scanYAML(value)
	if docs > 1 {
		p.problems.add(key, "holds more than one YAML document (a line \"---\" separates them); write a single list")
		return nil, nil
	}
	j = bytes.TrimSpace(j)
	if string(j) == "null" {
		return nil, nil
	}
	if kind := jsonKindOf(j); kind != "a list" {
		p.problems.add(key, "must be a YAML list of entries, each starting with \"- \"; got %s", kind)
		return nil, nil
	}
	if err := json.Unmarshal(j, &items); err != nil {
		p.problems.add(key, "cannot be read: %s", err)
		return nil, nil
	}
	return items, repeated
}

// rawEntryOf reads one item of a list.
func rawEntryOf(item json.RawMessage, repeated []string) rawEntry {
	e := rawEntry{repeated: repeated, kind: jsonKindOf(item)}
	if e.kind != "a mapping" {
		return e
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(item, &fields); err != nil {
		e.kind = "unreadable: " + err.Error()
		return e
	}
	e.fields = make([]rawField, 0, len(fields))
	for name, raw := range fields {
		e.fields = append(e.fields, rawField{name: name, rawValue: rawValueOf(raw)})
	}
	return e
}

// eachEntryBlock decodes a list written in block style a block of entries at a time with the
// strict decoder, and calls each with the items of each block and the index of its first.
// Decoding a block at a time takes memory in proportion to a block, not to the whole list,
// and decodes the list once. split is false when value is not such a list (see entryStarts),
// and then each is never called; ok is false when a block did not decode alone (an alias of
// an anchor in another block, a key set twice, a syntax error), and then each has been called
// for the blocks before it, and the list must be decoded whole.
func eachEntryBlock(value string, each func(first int, items []json.RawMessage)) (split, ok bool) {
	starts, split := entryStarts(value)
	if !split {
		return false, false
	}
	for i := 0; i < len(starts); i += entriesPerDecode {
		end := len(value)
		if i+entriesPerDecode < len(starts) {
			end = starts[i+entriesPerDecode]
		}
		j, err := yaml.YAMLToJSONStrict([]byte(value[starts[i]:end]))
		if err != nil {
			return true, false
		}
		var items []json.RawMessage
		if json.Unmarshal(j, &items) != nil || len(items) != min(entriesPerDecode, len(starts)-i) {
			return true, false
		}
		each(i, items)
	}
	return true, true
}

// decodeEntries decodes a list with eachEntryBlock; ok is false when it cannot.
func decodeEntries(value string) ([]json.RawMessage, bool) {
	var all []json.RawMessage
	split, ok := eachEntryBlock(value, func(_ int, items []json.RawMessage) { all = append(all, items...) })
	return all, split && ok
}

// entriesPerDecode is how many entries decodeEntries decodes at once: enough to make the
// decoder's own cost small beside theirs, few enough to take little memory.
const entriesPerDecode = 128

// entryStarts finds where each entry of a YAML list written in block style starts: at a
// line starting with "- " (or a lone "-"); the first starts at 0, with the blank and comment
// lines before it. It reports false unless every other line is blank, a comment or
// indented, and the text holds nothing that joins entries or documents (document markers,
// directives, a byte order mark).
func entryStarts(value string) ([]int, bool) {
	if mayHoldDocuments(value) {
		return nil, false
	}
	var starts []int
	offset := 0
	for line := range strings.Lines(value) {
		body := strings.TrimRight(line, "\r\n")
		trimmed := strings.TrimSpace(body)
		switch {
		case body == "-" || strings.HasPrefix(body, "- "):
			starts = append(starts, offset)
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
		case body == "---" && len(starts) == 0: // the first document's start (mayHoldDocuments)
		case body[0] == ' ' && len(starts) > 0:
		default:
			return nil, false
		}
		offset += len(line)
	}
	if len(starts) == 0 {
		return nil, false
	}
	starts[0] = 0
	return starts, true
}

// mayHoldDocuments reports whether a YAML text may hold more than one document, or anything
// else the single-pass decoding leaves to the full checks: a line starting with a document
// marker (--- or ...) or a directive (%), or a byte order mark. A "---" alone on the first
// line that is not blank or a comment only starts the first document.
func mayHoldDocuments[T string | []byte](text T) bool {
	s := string(text)
	content := false
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, "---") && !content && strings.TrimRight(line, " \r\n") == "---" {
			content = true
			continue
		}
		if strings.HasPrefix(line, "---") || strings.HasPrefix(line, "...") || strings.HasPrefix(line, "%") {
			return true
		}
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			content = true
		}
	}
	return strings.Contains(s, "\ufeff")
}

// scanYAML reads a list with the YAML decoder itself, which keeps what the conversion to
// JSON loses: fields set more than once in an entry (JSON keeps one of them), and documents
// after the first (JSON gets only the first).
func scanYAML(value string) (repeated [][]string, docs int) {
	dec := yamlv2.NewDecoder(strings.NewReader(value))
	for {
		var doc yamlDocument
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return repeated, docs
		}
		if err != nil {
			// A syntax error: the decoder cannot go on. If it is in the first document,
			// the conversion to JSON reports it; if later, there is more than one document.
			return repeated, docs + 1
		}
		if !doc.present {
			continue // an empty document, as after a trailing "---"
		}
		docs++
		if docs == 1 {
			for _, e := range doc.entries {
				repeated = append(repeated, e.repeated)
			}
		}
	}
}

// yamlDocument is one YAML document, scanned for repeated keys if it is a list of mappings.
type yamlDocument struct {
	// present is false for an empty document.
	present bool
	entries []repeatScan
}

// UnmarshalYAML implements yamlv2.Unmarshaler. The YAML decoder does not call it for an
// empty (null) document.
func (d *yamlDocument) UnmarshalYAML(unmarshal func(any) error) error {
	d.present = true
	_ = unmarshal(&d.entries) // not a list: the JSON checks report it
	return nil
}

// repeatScan records the keys that appear more than once in one list element.
type repeatScan struct{ repeated []string }

// UnmarshalYAML implements yamlv2.Unmarshaler.
func (r *repeatScan) UnmarshalYAML(unmarshal func(any) error) error {
	var fields yamlv2.MapSlice
	if unmarshal(&fields) != nil {
		return nil // not a mapping: the JSON checks report it
	}
	seen := map[string]bool{}
	for _, f := range fields {
		k := fmt.Sprint(f.Key)
		if seen[k] && !slices.Contains(r.repeated, k) {
			r.repeated = append(r.repeated, k)
		}
		seen[k] = true
	}
	return nil
}

// jsonKindOf names the type of a JSON value, for messages.
func jsonKindOf(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '[':
		return "a list"
	case '{':
		return "a mapping"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "nothing (null)"
	default:
		return "a number"
	}
}

// unknownKey explains a data key that is not part of the mapping.
func unknownKey(k string) string {
	for _, known := range []string{KeyUsers, KeyGroups} {
		if strings.EqualFold(k, known) {
			return fmt.Sprintf("unknown key; did you mean %s? Keys are case-sensitive", known)
		}
	}
	return fmt.Sprintf("unknown key; the mapping has only the keys %s and %s", KeyUsers, KeyGroups)
}
