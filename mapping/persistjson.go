package mapping

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
)

// encodePersisted is json.Marshal(p), byte for byte, written into a buffer sized for it
// up front: json.Marshal grows its buffer from nothing and copies the result, which for the
// megabytes of a large mapping costs more than the escaping itself. A copy with parts, or with
// text that is not valid UTF-8, is left to json.Marshal.
func encodePersisted(p persisted) ([]byte, error) {
	if p.Parts != nil || !utf8.ValidString(p.Version) {
		return json.Marshal(p)
	}
	size := len(p.Version) + 64
	keys := make([]string, 0, len(p.Data))
	for k, v := range p.Data {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return json.Marshal(p)
		}
		keys = append(keys, k)
		size += len(k) + len(v) + len(v)/8 + 8 // room for escapes: a line break per ~40 bytes
	}
	for _, k := range p.BinaryData {
		if !utf8.ValidString(k) {
			return json.Marshal(p)
		}
		size += len(k) + 8
	}
	slices.Sort(keys)
	b := make([]byte, 0, size)
	b = append(b, `{"version":`...)
	b = appendJSONString(b, p.Version)
	b = append(b, `,"data":`...)
	if p.Data == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, p.Data[k])
		}
		b = append(b, '}')
	}
	if len(p.BinaryData) > 0 {
		b = append(b, `,"binaryData":[`...)
		for i, k := range p.BinaryData {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendJSONString appends s, valid UTF-8, as encoding/json writes a string: quoted, with
// control characters, quotes, backslashes, <, > and & escaped, and U+2028 and U+2029 too.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			if strings.HasPrefix(s[i:], "\u2028") || strings.HasPrefix(s[i:], "\u2029") {
				b = append(b, s[start:i]...)
				b = append(b, `\u202`...)
				b = append(b, hex[s[i+2]&0xf])
				i += 3
				start = i
				continue
			}
			i++
			continue
		}
		if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
