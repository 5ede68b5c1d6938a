package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	yamlv2 "go.yaml.in/yaml/v2"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Object names the ConfigMap a manifest describes.
type Object struct {
	Namespace, Name string
}

// String returns "namespace/name".
func (o Object) String() string {
	if o.Namespace == "" {
		return o.Name
	}
	return o.Namespace + "/" + o.Name
}

// ParseManifest reads a ConfigMap manifest, YAML or JSON as `kubectl apply` takes it
// (apiVersion v1, kind ConfigMap), and parses its data with Parse. The Object names the
// ConfigMap whenever the manifest could be decoded, so that callers can say which one was
// refused. Keys under binaryData are reported with the other problems.
func ParseManifest(b []byte, issuers []string) (*Mapping, Object, error) {
	in, err := DecodeManifest(b)
	if err != nil {
		return nil, in.Object, err
	}
	m, err := ParseWith(in.Data, ParseOptions{Issuers: issuers, BinaryData: in.BinaryData})
	return m, in.Object, err
}

// Input is what a ConfigMap manifest or a mounted ConfigMap directory holds, before Parse.
type Input struct {
	// Data is the ConfigMap's data.
	Data map[string]string
	// BinaryData are the keys under binaryData (never read, each a problem for ParseWith).
	BinaryData []string
	// Object names the ConfigMap; empty for a mounted directory.
	Object Object
}

// DecodeManifest returns the data of a ConfigMap manifest. An error means the manifest is
// not a ConfigMap at all; the content of its keys is left to ParseWith.
func DecodeManifest(b []byte) (Input, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return Input{}, errors.New("the manifest is empty")
	}
	if in, ok := decodeFastManifest(b); ok {
		return in, nil
	}
	if in, ok := decodeValidManifest(b); ok {
		return in, nil
	}
	if n := countDocuments(b); n > 1 {
		return Input{}, fmt.Errorf("the manifest holds %d YAML documents; it must hold the ConfigMap alone", n)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return Input{}, fmt.Errorf("the manifest is not valid YAML or JSON: %w", err)
	}
	if err := checkHead(j); err != nil {
		return Input{}, err
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(b, &cm); err != nil {
		return Input{}, fmt.Errorf("the manifest is not a valid ConfigMap: %w", err)
	}
	return Input{
		Data:       cm.Data,
		BinaryData: binaryDataKeys(&cm),
		Object:     Object{Namespace: cm.Namespace, Name: cm.Name},
	}, nil
}

// checkHead takes a first, loose look at a manifest converted to JSON: it gives clearer
// messages for the common mistakes than the strict decoder would: the wrong kind, and data
// values written as YAML instead of strings.
func checkHead(j []byte) error {
	var head struct {
		APIVersion string                     `json:"apiVersion"`
		Kind       string                     `json:"kind"`
		Data       map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(j, &head); err != nil {
		return fmt.Errorf("the manifest is not a Kubernetes object: %w", err)
	}
	if head.APIVersion != "v1" || head.Kind != "ConfigMap" {
		return fmt.Errorf("the manifest has apiVersion %q and kind %q; it must be a ConfigMap (apiVersion: v1, kind: ConfigMap)", head.APIVersion, head.Kind)
	}
	keys := make([]string, 0, len(head.Data))
	for k := range head.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if kind := jsonKindOf(head.Data[k]); kind != "a string" && kind != "nothing (null)" {
			return fmt.Errorf("data.%s is %s; it must be a string holding YAML: write \"%s: |\" and indent the list below it", k, kind, k)
		}
	}
	return nil
}

// decodeValidManifest decodes a manifest of one document that the strict decoder accepts as
// a ConfigMap, in one pass over the YAML; for anything else it reports false, and
// DecodeManifest's checks, which decode it again, say what is wrong.
func decodeValidManifest(b []byte) (Input, bool) {
	if mayHoldDocuments(b) {
		return Input{}, false
	}
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil || checkHead(j) != nil {
		return Input{}, false
	}
	var cm corev1.ConfigMap
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cm); err != nil {
		return Input{}, false
	}
	return Input{
		Data:       cm.Data,
		BinaryData: binaryDataKeys(&cm),
		Object:     Object{Namespace: cm.Namespace, Name: cm.Name},
	}, true
}

// binaryDataKeys returns the sorted keys of cm's binaryData, or nil.
func binaryDataKeys(cm *corev1.ConfigMap) []string {
	if len(cm.BinaryData) == 0 {
		return nil
	}
	keys := make([]string, 0, len(cm.BinaryData))
	for k := range cm.BinaryData {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// countDocuments counts the non-empty YAML documents in b, stopping at 2.
func countDocuments(b []byte) int {
	dec := yamlv2.NewDecoder(bytes.NewReader(b))
	n := 0
	for n < 2 {
		var doc yamlDocument
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// In the first document, the conversion to JSON reports the syntax error;
			// after it, there is more than one document.
			return n + 1
		}
		if doc.present {
			n++
		}
	}
	return n
}
