package dashboard

import (
	"context"
	"time"
)

// Where the metrics come from.
const (
	SourceProxies    = "proxies"
	SourcePrometheus = "prometheus"
)

// Traffic is every series' per-second rates over a window.
type Traffic struct {
	Source string
	Window time.Duration
	// Rates are per second: requests, duration buckets (cumulative),
	// TCP bytes and connections.
	Rates map[Key]*Counts
	// Errors are problems reading some of the metrics (a proxy that did
	// not answer, series left out); what was read is still shown.
	Errors []string
}

// Metrics is a source of Traffic: a Prometheus or the Scraper.
type Metrics interface {
	Traffic(ctx context.Context, window time.Duration) (*Traffic, error)
}
