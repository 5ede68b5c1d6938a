package dex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// waitReady polls the discovery document until it answers 200 with our issuer, Dex exits or ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	lastErr := errors.New("no answer yet")
	for {
		err := s.checkDiscovery(ctx)
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-s.exited:
			return fmt.Errorf("the Dex process exited (%s)", s.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %w)", ctx.Err(), lastErr)
		case <-ticker.C:
		}
	}
}

// checkDiscovery fetches the discovery document once and checks that it names our issuer.
func (s *Server) checkDiscovery(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.IssuerURL+"/.well-known/openid-configuration", nil)
	if err != nil {
		return fmt.Errorf("cannot build the discovery request: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching the discovery document failed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the discovery document answered HTTP %d", resp.StatusCode)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&doc); err != nil {
		return fmt.Errorf("cannot decode the discovery document: %w", err)
	}
	if doc.Issuer != s.IssuerURL {
		return fmt.Errorf("the discovery document names issuer %q, want %q", doc.Issuer, s.IssuerURL)
	}
	return nil
}
