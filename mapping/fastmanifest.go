package mapping

import (
	"strings"
)

// A ConfigMap manifest as most are written (apiVersion, kind, metadata with a name and a
// namespace, and data whose values are literal blocks "key: |" or single-line strings) is
// read here without the YAML decoder, which converts the whole manifest to JSON, escaping
// every line of the lists, and decodes that again. Anything else is left to the decoder, and
// a test compares the two on every manifest this reader accepts (TestFastManifestAgrees,
// FuzzFastManifest).

// decodeFastManifest reads b, a manifest as most are written; ok is false for anything else.
func decodeFastManifest(b []byte) (in Input, ok bool) {
	text := string(b)
	if !plainText(text) || mayHoldDocuments(text) {
		return Input{}, false
	}
	var (
		seen    = map[string]bool{}
		section string // "metadata" or "data" while reading its fields, "" otherwise
		head    = map[string]string{}
	)
	for len(text) > 0 {
		var indent int
		var rest string
		indent, rest, text = nextLine(text)
		if rest == "" || rest[0] == '#' {
			continue
		}
		name, value, ok := splitKey(rest)
		if !ok {
			return Input{}, false
		}
		switch {
		case indent == 0:
			if seen[name] {
				return Input{}, false
			}
			seen[name] = true
			section = ""
			switch name {
			case "apiVersion", "kind":
				sc, ok := readScalar(value, false)
				if !ok || !onlyComment(sc.rest) {
					return Input{}, false
				}
				head[name] = sc.text
			case "metadata", "data":
				if !onlyComment(value) {
					return Input{}, false
				}
				section = name
				if name == "data" {
					in.Data = map[string]string{}
				}
			default:
				return Input{}, false
			}
		case indent == 2 && section == "metadata":
			if seen["metadata."+name] || name != "name" && name != "namespace" {
				return Input{}, false
			}
			seen["metadata."+name] = true
			sc, ok := readScalar(value, false)
			if !ok || !onlyComment(sc.rest) {
				return Input{}, false
			}
			if name == "name" {
				in.Object.Name = sc.text
			} else {
				in.Object.Namespace = sc.text
			}
		case indent == 2 && section == "data":
			if _, dup := in.Data[name]; dup || !plainString(name) || strings.ContainsAny(name, " \"'") {
				return Input{}, false
			}
			if header, _, _ := strings.Cut(value, " #"); strings.TrimRight(header, " ") == "|" || strings.TrimRight(header, " ") == "|-" {
				var v string
				v, text, ok = readLiteral(text, 2, strings.HasPrefix(header, "|-"))
				if !ok {
					return Input{}, false
				}
				in.Data[name] = v
				continue
			}
			sc, ok := readScalar(value, false)
			if !ok || !onlyComment(sc.rest) {
				return Input{}, false
			}
			in.Data[name] = sc.text
		default:
			return Input{}, false
		}
	}
	if head["apiVersion"] != "v1" || head["kind"] != "ConfigMap" || seen["metadata"] && !seen["metadata.name"] && !seen["metadata.namespace"] || seen["data"] && len(in.Data) == 0 {
		return Input{}, false // empty sections are null, and a wrong head has its own message
	}
	return in, true
}

// splitKey splits "name: value" (or "name:" alone) after its indentation.
func splitKey(s string) (name, value string, ok bool) {
	name, value, found := strings.Cut(s, ":")
	if !found || name == "" || value != "" && value[0] != ' ' || strings.ContainsAny(name, " \"'{}[],&*!|>%@`#") {
		return "", "", false
	}
	return name, strings.TrimLeft(value, " "), true
}

// readLiteral reads the lines of a literal block ("|", or "|-" when strip) from text, the
// manifest after its header line, under a key indented by parent spaces: its lines, less the
// indentation of the first, up to the first line indented less that is not blank. It returns
// the value and the text after it; ok is false for what it leaves to the decoder: a block
// starting with a blank line, or indented no deeper than its key.
func readLiteral(text string, parent int, strip bool) (value, after string, ok bool) {
	indent := 0
	for indent < len(text) && text[indent] == ' ' {
		indent++
	}
	if indent <= parent || indent == len(text) || text[indent] == '\n' {
		return "", "", false
	}
	// The block ends at the first line indented less that is not blank.
	stop := len(text)
	for at := 0; at < len(text); {
		line, _, _ := strings.Cut(text[at:], "\n")
		n := 0
		for n < len(line) && n < indent && line[n] == ' ' {
			n++
		}
		if n < indent && n < len(line) {
			stop = at
			break
		}
		at += len(line) + 1
	}
	block, after := text[:stop], text[stop:]
	var b strings.Builder
	b.Grow(len(block))
	// end is what b holds up to the end of the last line with content, with its line break.
	end := 0
	for len(block) > 0 {
		line, next, hasBreak := strings.Cut(block, "\n")
		if len(line) > indent { // lines shorter are blank: blocks end before a line indented less
			b.WriteString(line[indent:])
			if hasBreak {
				b.WriteByte('\n')
			}
			end = b.Len()
		} else if hasBreak {
			b.WriteByte('\n') // blank
		}
		block = next
	}
	value = b.String()[:end]
	if strip {
		value = strings.TrimSuffix(value, "\n")
	}
	return value, after, true
}

// nextLine splits the first line off text: its indentation (spaces), the rest of it, and
// the text after it.
func nextLine(text string) (indent int, rest, after string) {
	line := text
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		line, after = text[:i], text[i+1:]
	}
	for indent < len(line) && line[indent] == ' ' {
		indent++
	}
	return indent, line[indent:], after
}
