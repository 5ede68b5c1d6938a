package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/oidc-authenticator/oidc-authenticator/test/dex"
)

// maxResponse bounds how much of an answer is read.
const maxResponse = 1 << 20

// idTokens are the id_tokens the demo sends for review.
type idTokens struct {
	alice, bob string
}

// fetchTokens obtains alice's and bob's id_tokens from Dex and shows alice's claims.
func fetchTokens(ctx context.Context, n *narrator, d *dex.Server) (idTokens, error) {
	n.step("Logging in to Dex as alice and bob")
	n.say("As in the users' guides, the demo uses the password grant: POST %s/token", d.IssuerURL)
	n.say("with grant_type=password, the client %q, the user's email and password.", d.ClientID)
	alice, err := d.PasswordGrant(ctx, "alice@example.com", "alice-password")
	if err != nil {
		return idTokens{}, fmt.Errorf("cannot log in to Dex as alice: %w", err)
	}
	bob, err := d.PasswordGrant(ctx, "bob@example.com", "bob-password")
	if err != nil {
		return idTokens{}, fmt.Errorf("cannot log in to Dex as bob: %w", err)
	}
	claims, err := dex.UnverifiedClaims(alice.IDToken)
	if err != nil {
		return idTokens{}, fmt.Errorf("cannot decode alice's id_token: %w", err)
	}
	pretty, err := json.MarshalIndent(claims, "", "  ")
	if err != nil {
		return idTokens{}, fmt.Errorf("cannot format alice's claims: %w", err)
	}
	n.say("Got both id_tokens. The claims inside alice's (decoded here without verification;")
	n.say("a token is a password-equivalent secret, so the token itself is not printed):")
	n.block(string(pretty))
	n.say("iss must equal the configured issuer URL exactly, aud must hold %q, and the", d.ClientID)
	n.say("email and groups claims become the Kubernetes username and groups.")
	return idTokens{alice: alice.IDToken, bob: bob.IDToken}, nil
}

// reviewCase is one TokenReview the demo sends and the answer it expects.
type reviewCase struct {
	title          string
	apiVersion     string
	token          string
	allow          bool   // whether status.authenticated should be true
	mayBeUndecided bool   // when not allowed: may be answered "cannot verify now" (status.error), not cached
	username       string // expected status.user.username when allowed
	explain        string // one line telling the newcomer why
}

// tokenReview is the part of a TokenReview answer the demo checks.
type tokenReview struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Status     struct {
		Authenticated bool `json:"authenticated"`
		User          struct {
			Username string              `json:"username"`
			UID      string              `json:"uid"`
			Groups   []string            `json:"groups"`
			Extra    map[string][]string `json:"extra"`
		} `json:"user"`
		Error string `json:"error"`
	} `json:"status"`
}

// reviewTokens sends the demo's TokenReviews to the webhook, as kube-apiserver would, and
// fails if any answer differs from what the configuration implies.
func reviewTokens(ctx context.Context, n *narrator, a *authenticator, tokens idTokens) error {
	tampered, err := tamper(tokens.alice)
	if err != nil {
		return err
	}
	const v1, v1beta1 = "authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"
	cases := []reviewCase{
		{"alice", v1, tokens.alice, true, false, "alice@example.com",
			"Allowed: valid signature from the trusted issuer; username from email, groups prefixed \"oidc:\", uid from sub."},
		{"alice again", v1beta1, tokens.alice, true, false, "alice@example.com",
			"Allowed: older kube-apiservers send v1beta1 and get their answer in v1beta1."},
		{"bob", v1, tokens.bob, false, false, "",
			"Denied: the username comes from the email claim, and bob's email_verified is false."},
		{"alice's token with one signature character changed", v1, tampered, false, true, "",
			"Not accepted: the signature does not match the key Dex publishes under this kid. Dex may have replaced that key, so the webhook refetches its keys (at most every 10 s): until then it answers \"cannot verify now\" (kube-apiserver refuses the request and does not cache the answer), after it a clean denial."},
		{"a garbage token", v1, "this-is-not-a-jwt", false, false, "",
			"Denied: it is not a JWT at all."},
	}
	var problems []string
	for _, c := range cases {
		n.step(fmt.Sprintf("TokenReview (%s) for %s", c.apiVersion, c.title))
		n.say("POST %s, presenting the apiserver client certificate:", a.url("/authenticate"))
		if problem := reviewOne(ctx, n, a, c); problem != "" {
			n.say("UNEXPECTED: %s", problem)
			problems = append(problems, c.title+" ("+c.apiVersion+"): "+problem)
			continue
		}
		n.say("-> %s", c.explain)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d of %d TokenReviews did not get the expected answer:\n  %s",
			len(problems), len(cases), strings.Join(problems, "\n  "))
	}
	n.step("Summary")
	n.say("All %d TokenReviews got the answer the configuration promises.", len(cases))
	return nil
}

// reviewOne sends one TokenReview, prints the answer and returns what was wrong with it, or "".
func reviewOne(ctx context.Context, n *narrator, a *authenticator, c reviewCase) string {
	raw, err := a.review(ctx, c.apiVersion, c.token)
	if len(raw) > 0 {
		var pretty bytes.Buffer
		if json.Indent(&pretty, raw, "", "  ") == nil {
			raw = pretty.Bytes()
		}
		n.block(string(raw))
	}
	if err != nil {
		return err.Error()
	}
	var got tokenReview
	if err := json.Unmarshal(raw, &got); err != nil {
		return fmt.Sprintf("the answer is not a TokenReview: %v", err)
	}
	switch {
	case got.Kind != "TokenReview" || got.APIVersion != c.apiVersion:
		return fmt.Sprintf("the answer is a %s %s, want a %s TokenReview", got.APIVersion, got.Kind, c.apiVersion)
	case got.Status.Authenticated != c.allow:
		return fmt.Sprintf("status.authenticated is %t, want %t", got.Status.Authenticated, c.allow)
	case c.allow && got.Status.User.Username != c.username:
		return fmt.Sprintf("status.user.username is %q, want %q", got.Status.User.Username, c.username)
	case c.allow && !slices.Contains(got.Status.User.Groups, "oidc:developers"):
		return fmt.Sprintf("status.user.groups is %q, want it to contain \"oidc:developers\"", got.Status.User.Groups)
	case !c.allow && !c.mayBeUndecided && got.Status.Error != "":
		return fmt.Sprintf("status.error is %q; a clean denial leaves it empty so that kube-apiserver caches it", got.Status.Error)
	}
	return ""
}

// review POSTs a TokenReview of apiVersion for token to /authenticate and returns the answer body.
func (a *authenticator) review(ctx context.Context, apiVersion, token string) ([]byte, error) {
	body, err := json.Marshal(map[string]any{
		"apiVersion": apiVersion,
		"kind":       "TokenReview",
		"spec":       map[string]any{"token": token},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot encode the TokenReview: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url("/authenticate"), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot build the TokenReview request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the TokenReview request failed: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("cannot read the answer to the TokenReview: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return raw, fmt.Errorf("the webhook answered HTTP %d, want 200 with a TokenReview", resp.StatusCode)
	}
	return raw, nil
}

// tamper changes one character in the middle of a JWT's signature, keeping it well-formed
// base64url, so only the signature check can reject it. (The last character is avoided: some of
// its bits are padding, and changing them may not change the decoded signature.)
func tamper(token string) (string, error) {
	dot := strings.LastIndex(token, ".")
	if dot < 0 || len(token)-dot < 8 {
		return "", errors.New("alice's id_token has no signature to tamper with")
	}
	b := []byte(token)
	i := dot + (len(token)-dot)/2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b), nil
}
