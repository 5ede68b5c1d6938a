package mapping

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong in mapping data. Field locates it, e.g. "mapUsers[2].email";
// in a mapping of several ConfigMaps, ConfigMap names the one it is in (namespace/name).
type Problem struct {
	ConfigMap string
	Field     string
	Detail    string
}

// String formats the problem as "field: detail", or "ConfigMap ns/name: field: detail".
func (p Problem) String() string {
	if p.ConfigMap != "" {
		return "ConfigMap " + p.ConfigMap + ": " + p.Field + ": " + p.Detail
	}
	return p.Field + ": " + p.Detail
}

// InvalidError is returned by Parse and lists every problem it found, in the order of the
// data: keys, then entries, then fields.
type InvalidError struct {
	Problems []Problem
}

// Error lists every problem on one line.
func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	if len(parts) == 1 {
		return "invalid identity mapping: " + parts[0]
	}
	return fmt.Sprintf("invalid identity mapping (%d problems): %s", len(parts), strings.Join(parts, "; "))
}

// problems collects Problems while validating.
type problems []Problem

func (ps *problems) add(field, format string, args ...any) {
	*ps = append(*ps, Problem{Field: field, Detail: fmt.Sprintf(format, args...)})
}
