package issuer

import (
	"fmt"
)

// registeredClaims checks the types of an id_token's registered claims (OpenID Connect Core
// §2) as go-oidc's verifier, and so kube-apiserver, does by decoding them into typed fields,
// and returns the audience. A token that breaks them is invalid, whatever its signature.
//
// One difference: go-oidc also takes an iat written as a numeric string; here it must be a
// number, as RFC 7519 §2 says.
func registeredClaims(claims map[string]any) ([]string, error) {
	for _, name := range []string{"sub", "nonce", "at_hash"} {
		if v, ok := claims[name]; ok && v != nil {
			if _, isString := v.(string); !isString {
				return nil, fmt.Errorf("claim %q must be a string, got %s", name, describe(claims, name))
			}
		}
	}
	if v, ok := claims["iat"]; ok && v != nil {
		if _, isNumber := v.(float64); !isNumber {
			return nil, fmt.Errorf("claim \"iat\" must be a number, got %s", describe(claims, "iat"))
		}
	}
	if err := distributedClaims(claims); err != nil {
		return nil, err
	}
	switch aud := claims["aud"].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{aud}, nil
	case []any:
		out := make([]string, len(aud))
		for i, a := range aud {
			s, ok := a.(string)
			if !ok {
				return nil, fmt.Errorf("claim \"aud\": element %d is a %T, not a string", i, a)
			}
			out[i] = s
		}
		return out, nil
	default:
		return nil, fmt.Errorf("claim \"aud\" must be a string or a list of strings, got a %T", aud)
	}
}

// distributedClaims checks _claim_names and _claim_sources (OpenID Connect Core §5.6.2). They
// are not resolved, but, as in go-oidc, a claim naming a source the token lacks makes it
// invalid.
func distributedClaims(claims map[string]any) error {
	names, _ := claims["_claim_names"].(map[string]any)
	if v := claims["_claim_names"]; v != nil && names == nil {
		return fmt.Errorf("claim \"_claim_names\" must be an object, got a %T", v)
	}
	sources, _ := claims["_claim_sources"].(map[string]any)
	if v := claims["_claim_sources"]; v != nil && sources == nil {
		return fmt.Errorf("claim \"_claim_sources\" must be an object, got a %T", v)
	}
	for name, v := range sources {
		src, ok := v.(map[string]any)
		if !ok && v != nil {
			return fmt.Errorf("_claim_sources: source %q must be an object, got a %T", name, v)
		}
		for _, field := range []string{"endpoint", "access_token"} {
			if f, ok := src[field]; ok && f != nil {
				if _, isString := f.(string); !isString {
					return fmt.Errorf("_claim_sources: %s of source %q must be a string, got a %T", field, name, f)
				}
			}
		}
	}
	for name, v := range names {
		src, ok := v.(string)
		if !ok && v != nil {
			return fmt.Errorf("_claim_names: claim %q must name a source with a string, got a %T", name, v)
		}
		if _, found := sources[src]; !found || src == "" {
			return fmt.Errorf("_claim_names: claim %q names source %q, which _claim_sources lacks", name, src)
		}
	}
	return nil
}
