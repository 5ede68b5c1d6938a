//go:build tools

// Package dex pins the Dex OIDC provider used by the demo and the integration tests.
// It lives in a module of its own so the product's go.mod stays lean.
package dex

import _ "github.com/dexidp/dex/cmd/dex"
