// Package dex runs a real Dex OIDC provider on the loopback interface for tests and demos.
//
// Start builds (if needed) and launches Dex with an in-memory store, a static OAuth2 client and
// a few static users, serving HTTPS with a certificate from its own throw-away CA. The Server it
// returns knows the exact issuer URL Dex puts in its tokens, the CA to trust, and how to obtain
// tokens through the resource-owner password grant, so callers can exercise the authenticator
// against genuine id_tokens.
//
// The core API needs no *testing.T, so plain programs (the demo) can use it too; tests use
// StartForTest, which ties Dex's lifetime to the test.
package dex
