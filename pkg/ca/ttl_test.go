package ca

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"
)

func leafOf(t *testing.T, chain []string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(chain[0]))
	if b == nil {
		t.Fatal("leaf is not PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Lifetimes as istiod's sign: no request -> the default; a request up to
// the maximum is honoured; over it is refused with a TTLError naming both.
func TestWorkloadTTL(t *testing.T) {
	c, err := New(Options{WorkloadTTL: 2 * time.Hour, MaxWorkloadTTL: 10 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		requested time.Duration
		want      time.Duration
		refused   bool
	}{
		{"no request gets the default", 0, 2 * time.Hour, false},
		{"negative request gets the default", -time.Second, 2 * time.Hour, false},
		{"short request", 20 * time.Second, 20 * time.Second, false},
		{"request at the maximum", 10 * time.Hour, 10 * time.Hour, false},
		{"request over the maximum", 11 * time.Hour, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			chain, err := c.Sign(csrFor(t, Identity("cluster.local", "a", "b")), tc.requested)
			if tc.refused {
				var ttl *TTLError
				if !errors.As(err, &ttl) || ttl.Max != 10*time.Hour || ttl.Requested != tc.requested {
					t.Fatalf("want a TTLError naming %v and the max, got %v", tc.requested, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := leafOf(t, chain).NotAfter.Sub(start)
			if got < tc.want-2*time.Second || got > tc.want+2*time.Second {
				t.Errorf("lifetime %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := New(Options{WorkloadTTL: 48 * time.Hour, MaxWorkloadTTL: 24 * time.Hour}); err == nil {
		t.Error("a default TTL over the maximum must be refused at start")
	}
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.WorkloadTTL() != 24*time.Hour || d.MaxTTL() != 90*24*time.Hour {
		t.Errorf("defaults %v / %v, want istiod's 24h / 90 days", d.WorkloadTTL(), d.MaxTTL())
	}
}
