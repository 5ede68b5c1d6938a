package mapping

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A list as most mappings write it (one "- field: value" line starting each entry, the other
// fields on lines indented by two spaces, single-line values) is read here without the YAML
// decoder, which converts YAML to JSON and decodes that again: for 50,000 entries, most of a
// reload's CPU. Anything else in the list (any YAML this reader does not know to read exactly
// as the decoder would) makes it give up, and the list is decoded as before; a test compares
// the two readers on every list this one accepts (TestFastListAgrees, FuzzFastList).

// eachFastEntry reads value, a list as most mappings write it, and calls each with every
// entry in turn; each must not keep the entry's fields, whose memory is used again for the
// next entry. known are the fields an entry of the list may have. ok is false when value is
// anything else, and then each may have been called for the entries before the one that made
// it give up.
func eachFastEntry(value string, known []string, each func(i int, e rawEntry)) (ok bool) {
	if !plainText(value) {
		return false
	}
	var (
		cur     rawEntry
		inEntry bool
		n       int
		// list is the index in cur.fields of the field whose value is a block list being
		// read, -1 when none is; listIndent is the indentation of its items, 0 until the
		// first is read.
		list       = -1
		listIndent int
	)
	// endList finishes a block list: one without items is a field without value, which this
	// reader leaves to the decoder.
	endList := func() bool {
		if list >= 0 && len(cur.fields[list].items) == 0 {
			return false
		}
		list, listIndent = -1, 0
		return true
	}
	for len(value) > 0 {
		var indent int
		var rest string
		indent, rest, value = nextLine(value)
		switch {
		case rest == "" || rest[0] == '#':
			continue // blank, or a comment
		case indent == 0:
			if !strings.HasPrefix(rest, "- ") || !endList() {
				return false
			}
			if inEntry {
				each(n, cur)
				n++
			}
			if cur.fields == nil {
				cur.fields = make([]rawField, 0, 8)
			}
			cur, inEntry = rawEntry{kind: "a mapping", fields: cur.fields[:0]}, true
			if !readField(&cur, rest[2:], known, &list) {
				return false
			}
		case !inEntry:
			return false
		case list >= 0 && strings.HasPrefix(rest, "- ") && indent >= 2 && (listIndent == 0 || indent == listIndent):
			v, ok := readScalar(rest[2:], false)
			if !ok || !onlyComment(v.rest) {
				return false
			}
			listIndent = indent
			cur.fields[list].items = append(cur.fields[list].items, rawValue{kind: "a string", text: v.text})
		case indent == 2:
			if !endList() || !readField(&cur, rest, known, &list) {
				return false
			}
		default:
			return false
		}
	}
	if !inEntry || !endList() {
		return false
	}
	each(n, cur)
	return true
}

// readField reads "name: value", a field of e, where value is a scalar or a flow list on the
// same line, or nothing when a block list follows (then list is set to the field's index).
func readField(e *rawEntry, s string, known []string, list *int) bool {
	colon := strings.IndexByte(s, ':')
	if colon <= 0 {
		return false
	}
	name := s[:colon]
	if !isKnown(name, known) {
		return false // an unknown field or a quoted name: the decoder says what it is
	}
	if _, dup := e.field(name); dup {
		return false
	}
	s = s[colon+1:]
	if s != "" && s[0] != ' ' {
		return false
	}
	s = strings.TrimLeft(s, " ")
	if onlyComment(s) {
		e.fields = append(e.fields, rawField{name: name, rawValue: rawValue{kind: "a list"}})
		*list = len(e.fields) - 1
		return true
	}
	var v rawValue
	if s[0] == '[' {
		items, rest, ok := readFlowList(s[1:])
		if !ok || !onlyComment(rest) {
			return false
		}
		v = rawValue{kind: "a list", items: items}
	} else {
		sc, ok := readScalar(s, false)
		if !ok || !onlyComment(sc.rest) {
			return false
		}
		v = rawValue{kind: "a string", text: sc.text}
	}
	e.fields = append(e.fields, rawField{name: name, rawValue: v})
	return true
}

// isKnown reports whether name is one of known.
func isKnown(name string, known []string) bool {
	for _, k := range known {
		if k == name {
			return true
		}
	}
	return false
}

// readFlowList reads the items of a flow list after its "[", up to its "]", all on one line:
// strings only, no trailing comma.
func readFlowList(s string) (items []rawValue, rest string, ok bool) {
	s = strings.TrimLeft(s, " ")
	if strings.HasPrefix(s, "]") {
		return []rawValue{}, s[1:], true
	}
	for {
		sc, ok := readScalar(s, true)
		if !ok {
			return nil, "", false
		}
		items = append(items, rawValue{kind: "a string", text: sc.text})
		s = strings.TrimLeft(sc.rest, " ")
		switch {
		case strings.HasPrefix(s, "]"):
			return items, s[1:], true
		case strings.HasPrefix(s, ","):
			s = strings.TrimLeft(s[1:], " ")
		default:
			return nil, "", false
		}
	}
}

// scalar is a string read from a line, and what follows it on the line.
type scalar struct {
	text, rest string
}

// readScalar reads a string at the start of s: double-quoted without escapes, single-quoted,
// or plain (unquoted) when the decoder would read it as a string too, not as a number, a
// boolean, null or a timestamp. inFlow says it is an item of a flow list, where a plain
// string ends at any of ",?[]{}".
func readScalar(s string, inFlow bool) (scalar, bool) {
	if s == "" {
		return scalar{}, false
	}
	switch s[0] {
	case '"':
		end := strings.IndexAny(s[1:], "\"\\")
		if end < 0 || s[1+end] != '"' {
			return scalar{}, false // an escape, or no closing quote on the line
		}
		return scalar{text: s[1 : 1+end], rest: s[2+end:]}, true
	case '\'':
		var b []byte // nil until a quote written twice
		start := 1
		for i := 1; i < len(s); i++ {
			if s[i] != '\'' {
				continue
			}
			if i+1 < len(s) && s[i+1] == '\'' {
				b = append(b, s[start:i+1]...) // with one of the two quotes
				i++
				start = i + 1
				continue
			}
			if b == nil {
				return scalar{text: s[1:i], rest: s[i+1:]}, true
			}
			return scalar{text: string(append(b, s[start:i]...)), rest: s[i+1:]}, true
		}
		return scalar{}, false
	}
	end := len(s)
	if i := strings.Index(s, " #"); i >= 0 {
		end = i
	}
	if inFlow {
		if i := strings.IndexAny(s[:end], ",?[]{}"); i >= 0 {
			end = i
		}
	}
	text := strings.TrimRight(s[:end], " ")
	if !plainString(text) || strings.Contains(text, ": ") || strings.HasSuffix(text, ":") {
		return scalar{}, false
	}
	return scalar{text: text, rest: s[end:]}, true
}

// onlyComment reports whether what follows a value on its line is nothing, spaces, or a
// comment after a space.
func onlyComment(s string) bool {
	t := strings.TrimLeft(s, " ")
	return t == "" || t[0] == '#' && len(t) < len(s)
}

// plainString reports whether the decoder reads text, written unquoted, as this string: it
// starts with a letter or a digit, is not one of the words read as a boolean or null, and
// does not start with a digit unless it cannot be a number or a timestamp.
func plainString(text string) bool {
	if text == "" {
		return false
	}
	c := text[0]
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		switch strings.ToLower(text) {
		case "y", "yes", "n", "no", "true", "false", "on", "off", "null":
			return false
		}
		return true
	case '0' <= c && c <= '9':
		if len(text) > 4 && text[4] == '-' && strings.Trim(text[:4], "0123456789") == "" {
			return false // may be a timestamp
		}
		plain := strings.ReplaceAll(text, "_", "")
		if _, err := strconv.ParseInt(plain, 0, 64); err == nil || isRangeError(err) {
			return false
		}
		if _, err := strconv.ParseUint(plain, 0, 64); err == nil || isRangeError(err) {
			return false
		}
		if _, err := strconv.ParseFloat(plain, 64); err == nil || isRangeError(err) || yamlFloat.MatchString(plain) {
			return false
		}
		return !strings.HasPrefix(plain, "0b")
	}
	return false
}

// yamlFloat is how the decoder recognises a float.
var yamlFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

func isRangeError(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// plainText reports whether s holds only what this reader handles as the decoder does: valid
// UTF-8 without tabs, carriage returns, other control characters, byte order marks, or the
// characters YAML 1.1 takes as line breaks besides "\n".
func plainText(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < ' ' && c != '\n' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1,
			r <= 0x9f, // C1 control characters, and NEL, a line break in YAML 1.1
			r == 0x2028, r == 0x2029, r == 0xfeff, r == 0xfffe, r == 0xffff:
			return false
		}
		i += size
	}
	return true
}
