package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// pick says which token a request carries.
type pick int

const (
	repeatFirst pick = iota // every request the same token (cache hits)
	eachOnce                // every token once, then stop (cold verification)
	cycle                   // round and round the pool (denials: nothing is cached)
)

// load is one bounded run of the load generator against one server.
type load struct {
	url      string
	roots    *x509.CertPool
	workers  int
	duration time.Duration
	tokens   []string
	pick     pick
	// want is the authenticated value every answer must carry; nil: not checked (the ceiling).
	want *bool
}

// loadResult is what one run measured on the client side.
type loadResult struct {
	requests   int
	unexpected int // answers with another authenticated value, or not 200
	throttled  int // 429 answers
	elapsed    time.Duration
	latencies  []time.Duration // sorted
}

func (r loadResult) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r loadResult) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(float64(len(r.latencies))*p))]
}

// reviewBody is a TokenReview as kube-apiserver sends it.
func reviewBody(token string) []byte {
	b, _ := json.Marshal(map[string]any{
		"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
		"spec": map[string]any{"token": token, "audiences": []string{"https://kubernetes.default.svc.cluster.local"}},
	})
	return b
}

func client(roots *x509.CertPool, workers int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   true, // as client-go does: HTTP/2 where the server offers it
			MaxIdleConnsPerHost: workers,
		},
	}
}

// run sends TokenReviews with l.workers concurrent workers over keep-alive HTTPS until the
// duration passes (or, for eachOnce, the tokens run out), and returns what it saw.
func (l load) run(ctx context.Context) (loadResult, error) {
	c := client(l.roots, l.workers)
	defer c.CloseIdleConnections()
	bodies := make([][]byte, len(l.tokens))
	for i, t := range l.tokens {
		bodies[i] = reviewBody(t)
	}
	ctx, cancel := context.WithTimeout(ctx, l.duration)
	defer cancel()
	var (
		next      atomic.Int64
		wg        sync.WaitGroup
		mu        sync.Mutex
		res       loadResult
		firstErr  error
		latencies = make([][]time.Duration, l.workers)
	)
	start := time.Now()
	for w := range l.workers {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1<<16)
			var unexpected, throttled int
		requests:
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				switch l.pick {
				case repeatFirst:
					i = 0
				case eachOnce:
					if i >= len(bodies) {
						break requests // the others finish the requests they have in flight
					}
				case cycle:
					i %= len(bodies)
				}
				began := time.Now()
				status, authenticated, err := post(ctx, c, l.url, bodies[i])
				if err != nil {
					if ctx.Err() != nil {
						break // the run ended while this request was in flight
					}
					mu.Lock()
					firstErr = err
					mu.Unlock()
					cancel()
					break
				}
				lat = append(lat, time.Since(began))
				switch {
				case status == http.StatusTooManyRequests:
					throttled++
				case status != http.StatusOK || (l.want != nil && authenticated != *l.want):
					unexpected++
				}
			}
			mu.Lock()
			latencies[w] = lat
			res.unexpected += unexpected
			res.throttled += throttled
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	for _, lat := range latencies {
		res.latencies = append(res.latencies, lat...)
	}
	slices.Sort(res.latencies)
	res.requests = len(res.latencies)
	return res, firstErr
}

var authenticatedTrue = []byte(`"authenticated":true`)

func post(ctx context.Context, c *http.Client, url string, body []byte) (status int, authenticated bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, false, fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false, fmt.Errorf("POST %s: read the answer: %w", url, err)
	}
	return resp.StatusCode, bytes.Contains(b, authenticatedTrue), nil
}
