package dex

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// UnverifiedClaims decodes the payload of a compact JWT without checking its signature. It is
// meant for looking at tokens in tests and demos, never for trusting them.
func UnverifiedClaims(token string) (map[string]any, error) {
	return segment(token, 1, "payload")
}

// UnverifiedHeader decodes the JOSE header of a compact JWT (alg, kid), unverified.
func UnverifiedHeader(token string) (map[string]any, error) {
	return segment(token, 0, "header")
}

func segment(token string, i int, what string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("the token is not a compact JWT: it should have three dot-separated parts")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		return nil, fmt.Errorf("the token's %s is not base64url: %w", what, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("the token's %s is not a JSON object: %w", what, err)
	}
	return m, nil
}
