package mapping

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Several ConfigMaps make one mapping: entries merged in the order given, each named by its
// ConfigMap and its index there; duplicates across them are refused as within one.
func TestParseSet(t *testing.T) {
	parts := []Part{
		{Name: "kube-system/mapping-a", Data: map[string]string{
			KeyUsers:  "- subject: alice-sub\n  username: alice\n",
			KeyGroups: "- group: developers\n  groups: [devs]\n",
		}},
		{Name: "kube-system/mapping-b", Data: map[string]string{
			KeyUsers:  "- subject: bob-sub\n  username: bob\n- email: carol@example.com\n  username: carol\n",
			KeyGroups: "- group: everyone\n  groups: [all]\n",
		}},
	}
	m, err := ParseSet(parts, ParseOptions{Issuers: testIssuers})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Users) != 3 || len(m.Groups) != 2 || m.Users[1].Subject != "bob-sub" {
		t.Fatalf("merged users %+v, groups %+v", m.Users, m.Groups)
	}
	var applied Applied
	u, match, err := m.Apply(WithApplied(context.Background(), &applied), identity(), false)
	if err != nil || u.Name != "alice" {
		t.Fatalf("Apply: %+v, %v", u, err)
	}
	applied.m, applied.match = m, match
	text, _ := applied.Entries().MarshalText()
	if want := "[kube-system/mapping-a:mapUsers[0]:subject=alice-sub kube-system/mapping-a:mapGroups[0]:group=developers kube-system/mapping-b:mapGroups[0]:group=everyone]"; string(text) != want {
		t.Errorf("applied entries %s, want %s", text, want)
	}
	if got := m.DescribeMatch(match); !strings.Contains(got, "mapGroups[0] of ConfigMap kube-system/mapping-b (group \"everyone\")") {
		t.Errorf("DescribeMatch = %s", got)
	}

	// The same subject in two ConfigMaps, and a problem in one: each problem names its
	// ConfigMap, the duplicate names the entry it repeats.
	parts[1].Data[KeyUsers] += "- subject: alice-sub\n  username: alice2\n"
	parts[0].Data[KeyGroups] = "- group: developers\n"
	_, err = ParseSet(parts, ParseOptions{Issuers: testIssuers})
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("want an *InvalidError, got %v", err)
	}
	want := []string{
		"ConfigMap kube-system/mapping-a: mapGroups[0].groups: required",
		`ConfigMap kube-system/mapping-b: mapUsers[2].subject: subject "alice-sub" is already mapped by mapUsers[0] of ConfigMap kube-system/mapping-a`,
	}
	if len(inv.Problems) != len(want) {
		t.Fatalf("problems %q, want %d", inv.Problems, len(want))
	}
	for i, p := range inv.Problems {
		if !strings.HasPrefix(p.String(), want[i]) {
			t.Errorf("problem %d = %q, want it to start with %q", i, p, want[i])
		}
	}
	if inv.Problems[1].ConfigMap != "kube-system/mapping-b" {
		t.Errorf("problem names ConfigMap %q", inv.Problems[1].ConfigMap)
	}
}
