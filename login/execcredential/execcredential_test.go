package execcredential

import (
	"strings"
	"testing"
	"time"
)

func TestEncode(t *testing.T) {
	exp := time.Date(2026, 12, 3, 9, 30, 15, 999, time.FixedZone("CET", 3600))
	const token = "eyJhbGciOiJSUzI1NiJ9.e30.sig"
	for _, c := range []struct {
		name, execInfo, want, wantErr string
	}{
		{name: "no KUBERNETES_EXEC_INFO: v1",
			want: `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false},"status":{"expirationTimestamp":"2026-12-03T08:30:15Z","token":"eyJhbGciOiJSUzI1NiJ9.e30.sig"}}` + "\n"},
		{name: "v1 asked",
			execInfo: `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}`,
			want:     `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false},"status":{"expirationTimestamp":"2026-12-03T08:30:15Z","token":"eyJhbGciOiJSUzI1NiJ9.e30.sig"}}` + "\n"},
		{name: "v1beta1 asked",
			execInfo: `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}`,
			want:     `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false},"status":{"expirationTimestamp":"2026-12-03T08:30:15Z","token":"eyJhbGciOiJSUzI1NiJ9.e30.sig"}}` + "\n"},
		{name: "v1alpha1 asked", execInfo: `{"apiVersion":"client.authentication.k8s.io/v1alpha1"}`, wantErr: "writes client.authentication.k8s.io/v1 and client.authentication.k8s.io/v1beta1 only"},
		{name: "garbage", execInfo: `{`, wantErr: "KUBERNETES_EXEC_INFO is not an ExecCredential"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Encode(c.execInfo, token, exp)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}
