package login

import (
	"testing"
	"time"
)

func TestFresh(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name          string
		lifetime, age time.Duration // issued lifetime, and how long ago
		noIssuedAt    bool
		want          bool
	}{
		{name: "1h token, 5 min old", lifetime: time.Hour, age: 5 * time.Minute, want: true},
		{name: "1h token, 53 min old: 7 min (11%) left", lifetime: time.Hour, age: 53 * time.Minute, want: true},
		{name: "1h token, 55 min old: 5 min (8%) left", lifetime: time.Hour, age: 55 * time.Minute, want: false},
		{name: "24h token, 23h old: 1h (4%) left", lifetime: 24 * time.Hour, age: 23 * time.Hour, want: false},
		{name: "5 min token, 3 min old: 2 min (40%) left", lifetime: 5 * time.Minute, age: 3 * time.Minute, want: true},
		{name: "5 min token, 4m30s old: 30 s left", lifetime: 5 * time.Minute, age: 4*time.Minute + 30*time.Second, want: false},
		{name: "30 s token, just issued: under a minute", lifetime: 30 * time.Second, want: false},
		{name: "expired", lifetime: time.Hour, age: 2 * time.Hour, want: false},
		{name: "no iat, 10 min left", lifetime: time.Hour, age: 50 * time.Minute, noIssuedAt: true, want: true},
		{name: "no iat, 30 s left", lifetime: time.Hour, age: 59*time.Minute + 30*time.Second, noIssuedAt: true, want: false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := cachedToken{raw: "x", issuedAt: now.Add(-c.age), expiry: now.Add(-c.age).Add(c.lifetime)}
			if c.noIssuedAt {
				tok.issuedAt = time.Time{}
			}
			if got := fresh(tok, now); got != c.want {
				t.Errorf("fresh = %t, want %t", got, c.want)
			}
		})
	}
	if fresh(cachedToken{expiry: now.Add(time.Hour)}, now) {
		t.Error("an entry without a readable id_token is never fresh")
	}
}
