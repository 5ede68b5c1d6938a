// Package execcredential writes what a client-go exec credential plugin prints: an
// ExecCredential in the version kubectl asks for.
package execcredential

import (
	"encoding/json"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	clientauthv1beta1 "k8s.io/client-go/pkg/apis/clientauthentication/v1beta1"
)

// EnvExecInfo is the environment variable in which client-go passes the plugin an
// ExecCredential naming the apiVersion it expects.
const EnvExecInfo = "KUBERNETES_EXEC_INFO"

// Encode returns the ExecCredential carrying token and its expiry, followed by a newline, in the
// apiVersion that execInfo (the value of KUBERNETES_EXEC_INFO) asks for; v1 when it is empty.
func Encode(execInfo, token string, expiry time.Time) ([]byte, error) {
	version := clientauthv1.SchemeGroupVersion
	if execInfo != "" {
		var info metav1.TypeMeta
		if err := json.Unmarshal([]byte(execInfo), &info); err != nil {
			return nil, fmt.Errorf("%s is not an ExecCredential: %w", EnvExecInfo, err)
		}
		gv, err := schema.ParseGroupVersion(info.APIVersion)
		if err != nil {
			return nil, fmt.Errorf("%s asks for %q: %w", EnvExecInfo, info.APIVersion, err)
		}
		version = gv
	}
	kind := metav1.TypeMeta{Kind: "ExecCredential", APIVersion: version.String()}
	exp := metav1.NewTime(expiry)
	var cred any
	switch version {
	case clientauthv1.SchemeGroupVersion:
		cred = clientauthv1.ExecCredential{TypeMeta: kind, Status: &clientauthv1.ExecCredentialStatus{Token: token, ExpirationTimestamp: &exp}}
	case clientauthv1beta1.SchemeGroupVersion:
		cred = clientauthv1beta1.ExecCredential{TypeMeta: kind, Status: &clientauthv1beta1.ExecCredentialStatus{Token: token, ExpirationTimestamp: &exp}}
	default:
		return nil, fmt.Errorf("%s asks for %s, but this plugin writes %s and %s only: set apiVersion %s in the kubeconfig's exec stanza",
			EnvExecInfo, version, clientauthv1.SchemeGroupVersion, clientauthv1beta1.SchemeGroupVersion, clientauthv1.SchemeGroupVersion)
	}
	b, err := json.Marshal(cred)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the ExecCredential: %w", err)
	}
	return append(b, '\n'), nil
}
