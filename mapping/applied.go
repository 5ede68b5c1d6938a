package mapping

import (
	"context"
	"encoding/json"
	"strconv"
)

// Applied records, for the decision log, which mapping version was in force for a review and
// which of its entries gave the user their name and groups, so that an auditor can answer
// "why was alice in cluster-admins at 10:02?". Store.Map fills it in when the context carries
// it (WithApplied); it costs nothing more than the match itself until it is logged.
type Applied struct {
	// Version is the mapping version in force: a ConfigMap resourceVersion or a file's content
	// hash; "" when no version is in force (none loaded yet, or the source is deleted).
	Version string
	// Set says the mapping was consulted for this review.
	Set bool

	m     *Mapping
	match Match
}

type appliedKey struct{}

// WithApplied returns ctx carrying a, for Store.Map to fill in.
func WithApplied(ctx context.Context, a *Applied) context.Context {
	return context.WithValue(ctx, appliedKey{}, a)
}

func appliedFrom(ctx context.Context) *Applied {
	a, _ := ctx.Value(appliedKey{}).(*Applied)
	return a
}

// AppliedEntry is one mapping entry that matched.
type AppliedEntry struct {
	// ConfigMap names the ConfigMap the entry is in, in a mapping of several; "" otherwise.
	ConfigMap string `json:"configMap,omitempty"`
	Key       string `json:"key"`   // mapUsers or mapGroups
	Index     int    `json:"index"` // the entry's index in its list (in its ConfigMap)
	By        string `json:"by"`    // what matched: subject, email, group or expression
	Value     string `json:"value"` // the subject, email, group or expression of the entry
}

// AppliedEntries are the entries that matched, the mapUsers one first, then the mapGroups
// ones in file order. They log as a list of objects in JSON and as
// [mapUsers[0]:email=alice@example.com mapGroups[1]:group=developers] in text.
type AppliedEntries []AppliedEntry

// Entries returns the entries that matched.
func (a *Applied) Entries() AppliedEntries {
	if a == nil || a.m == nil {
		return nil
	}
	var out AppliedEntries
	if i := a.match.User; i >= 0 && i < len(a.m.Users) {
		by, v := a.m.Users[i].matchedBy()
		cm, local := a.m.Locate(KeyUsers, i)
		out = append(out, AppliedEntry{ConfigMap: cm, Key: KeyUsers, Index: local, By: by, Value: v})
	}
	for _, i := range a.match.Groups {
		if i < 0 || i >= len(a.m.Groups) {
			continue
		}
		by, v := a.m.Groups[i].matchedBy()
		cm, local := a.m.Locate(KeyGroups, i)
		out = append(out, AppliedEntry{ConfigMap: cm, Key: KeyGroups, Index: local, By: by, Value: v})
	}
	return out
}

// MarshalText writes the entries on one line, for the text log.
func (es AppliedEntries) MarshalText() ([]byte, error) {
	b := append(make([]byte, 0, 64), '[')
	for i, e := range es {
		if i > 0 {
			b = append(b, ' ')
		}
		if e.ConfigMap != "" {
			b = append(b, e.ConfigMap...)
			b = append(b, ':')
		}
		b = append(b, e.Key...)
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(e.Index), 10)
		b = append(b, "]:"...)
		b = append(b, e.By...)
		b = append(b, '=')
		b = append(b, e.Value...)
	}
	return append(b, ']'), nil
}

// MarshalJSON writes the entries as a list of objects, for the JSON log.
func (es AppliedEntries) MarshalJSON() ([]byte, error) {
	if es == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]AppliedEntry(es))
}
