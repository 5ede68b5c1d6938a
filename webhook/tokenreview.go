package webhook

import (
	"encoding/json"
	"errors"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	authenticationv1beta1 "k8s.io/api/authentication/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The TokenReview versions kube-apiserver may send (--authentication-token-webhook-version).
var (
	versionV1      = authenticationv1.SchemeGroupVersion.String()
	versionV1beta1 = authenticationv1beta1.SchemeGroupVersion.String()
)

// reviewRequest is the part of a TokenReview we read. The spec is identical in v1 and
// v1beta1.
type reviewRequest struct {
	metav1.TypeMeta `json:",inline"`
	Spec            authenticationv1.TokenReviewSpec `json:"spec"`
}

// decodeReview parses a TokenReview and says precisely what is wrong with a bad one. The
// messages never quote the token.
func decodeReview(body []byte) (*reviewRequest, error) {
	var r reviewRequest
	if err := json.Unmarshal(body, &r); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, fmt.Errorf("the body is not valid JSON (offset %d): %w", syntax.Offset, err)
		}
		return nil, fmt.Errorf("the body is not a TokenReview: %w", err)
	}
	if r.APIVersion != versionV1 && r.APIVersion != versionV1beta1 {
		return nil, fmt.Errorf("apiVersion %q is not supported; send %s or %s", r.APIVersion, versionV1, versionV1beta1)
	}
	if r.Kind != "TokenReview" {
		return nil, fmt.Errorf("kind %q is not supported; send TokenReview", r.Kind)
	}
	if r.Spec.Token == "" {
		return nil, errors.New("spec.token is empty")
	}
	return &r, nil
}

// reviewResponse builds the answer in the version of the request. The spec, and with it
// the token, is never echoed back.
func reviewResponse(apiVersion string, status authenticationv1.TokenReviewStatus) any {
	if apiVersion == versionV1beta1 {
		extra := make(map[string]authenticationv1beta1.ExtraValue, len(status.User.Extra))
		for k, v := range status.User.Extra {
			extra[k] = authenticationv1beta1.ExtraValue(v)
		}
		if len(extra) == 0 {
			extra = nil
		}
		return &authenticationv1beta1.TokenReview{
			TypeMeta: metav1.TypeMeta{APIVersion: versionV1beta1, Kind: "TokenReview"},
			Status: authenticationv1beta1.TokenReviewStatus{
				Authenticated: status.Authenticated,
				Error:         status.Error,
				User: authenticationv1beta1.UserInfo{
					Username: status.User.Username, UID: status.User.UID,
					Groups: status.User.Groups, Extra: extra,
				},
			},
		}
	}
	return &authenticationv1.TokenReview{
		TypeMeta: metav1.TypeMeta{APIVersion: versionV1, Kind: "TokenReview"},
		Status:   status,
	}
}
