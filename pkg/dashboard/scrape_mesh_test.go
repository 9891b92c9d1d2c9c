package dashboard_test

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/pkg/dashboard"
)

func scraperFor(tm *testMesh, opts dashboard.ScrapeOptions) *dashboard.Scraper {
	var mu sync.Mutex
	all := tm.admins()
	keep := len(all)
	opts.Targets = func() []dashboard.Target {
		mu.Lock()
		defer mu.Unlock()
		var out []dashboard.Target
		for _, a := range all[:keep] {
			out = append(out, dashboard.Target{ID: a.id, Admin: a.admin})
		}
		return out
	}
	return dashboard.NewScraper(opts)
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func near(got, want float64) bool { return math.Abs(got-want) < 1e-9 }

func edge(t *testing.T, g dashboard.Graph, from, to string) dashboard.Edge {
	t.Helper()
	for _, e := range g.Edges {
		if e.Source == from && e.Target == to {
			return e
		}
	}
	t.Fatalf("no edge %s -> %s in %+v", from, to, g.Edges)
	return dashboard.Edge{}
}

func node(t *testing.T, g dashboard.Graph, id string) dashboard.Node {
	t.Helper()
	for _, n := range g.Nodes {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("no node %s in %+v", id, g.Nodes)
	return dashboard.Node{}
}

// TestScraperRatesFromRealProxies scrapes five real sidecars before and
// after a counted load, 10 s apart on the scraper's clock: each edge's
// rate is its request count over 10 s, error ratios are the aborted
// share, the health classes follow Kiali's thresholds, mTLS is what the
// server sidecars reported, and ratings answering 30 ms late puts its p50
// in the (25, 50] ms bucket.
func TestScraperRatesFromRealProxies(t *testing.T) {
	tm := newTestMesh(t)
	s := scraperFor(tm, dashboard.ScrapeOptions{Interval: 5 * time.Second})
	ctx := context.Background()
	t0 := time.Now()
	s.ScrapeOnce(ctx, t0)
	tm.standardTraffic(t)
	s.ScrapeOnce(ctx, t0.Add(10*time.Second))

	tr, err := s.Traffic(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Errors) != 0 {
		t.Fatalf("scrape errors: %v", tr.Errors)
	}
	g := dashboard.BuildGraph(tr)
	client := dashboard.WorkloadID("default", "demo-client")
	product, reviews, ratings := dashboard.ServiceID(productHost), dashboard.ServiceID(reviewsHost), dashboard.ServiceID(ratingsHost)

	e := edge(t, g, client, product)
	if !near(e.RPS, 10) || !near(e.ErrorRatio, 0.02) || e.Health != dashboard.Degraded || e.MTLS != "mutual_tls" {
		t.Errorf("client -> product-service: want 10 rps, 2%% errors, degraded, mutual_tls; got %+v", e.Stats)
	}
	v1 := edge(t, g, product, dashboard.WorkloadID("default", tm.v1.Name))
	v2 := edge(t, g, product, dashboard.WorkloadID("default", tm.v2.Name))
	if !near(v1.RPS+v2.RPS, 9.8) || v1.RPS < v2.RPS || v1.ErrorRatio != 0 || v1.Health != dashboard.Healthy {
		t.Errorf("product-service -> v1 + v2: want 9.8 rps in all, v1 the larger, no errors; got v1 %+v v2 %+v", v1.Stats, v2.Stats)
	}
	if n := node(t, g, product); n.Health != dashboard.Degraded || !near(n.RPS, 10) {
		t.Errorf("product-service node: want degraded at 10 rps, got %+v", n)
	}
	if n := node(t, g, reviews); n.Health != dashboard.Failure || !near(n.ErrorRatio, 0.5) {
		t.Errorf("reviews node: want failure at 50%% errors, got %+v", n)
	}
	r := edge(t, g, ratings, dashboard.WorkloadID("default", tm.ratings.Name))
	if !near(r.RPS, 2) || r.MTLS != "none" || r.Health != dashboard.Healthy {
		t.Errorf("ratings -> workload: want 2 rps, plaintext, healthy; got %+v", r.Stats)
	}
	// p99 below a second: no request took that long, so its rank must not
	// fall in the +Inf bucket.
	if r.P50 == nil || *r.P50 <= 25 || *r.P50 > 50 || r.P99 == nil || *r.P99 < *r.P50 || *r.P99 >= 1000 {
		t.Errorf("ratings latency with a 30 ms delay: want 25 < p50 <= 50, p50 <= p99 < 1000; got p50 %v p99 %v", deref(r.P50), deref(r.P99))
	}
	// The client's node health is its outbound error ratio: 12 of 140.
	if n := node(t, g, client); n.Health != dashboard.Degraded || !near(n.ErrorRatio, 12.0/140) {
		t.Errorf("client node: want degraded at 12/140 errors, got %+v", n)
	}
	// Deterministic layout: the client calls, services in the middle,
	// workloads last.
	if c, p, w := node(t, g, client), node(t, g, product), node(t, g, dashboard.WorkloadID("default", tm.v1.Name)); !(c.Layer == 0 && p.Layer == 1 && w.Layer == 2 && c.X < p.X && p.X < w.X) {
		t.Errorf("layers: client %d, service %d, workload %d", c.Layer, p.Layer, w.Layer)
	}
	again := dashboard.BuildGraph(tr)
	for i := range g.Nodes {
		if g.Nodes[i].ID != again.Nodes[i].ID || g.Nodes[i].X != again.Nodes[i].X || g.Nodes[i].Y != again.Nodes[i].Y {
			t.Fatalf("layout not deterministic: %+v vs %+v", g.Nodes[i], again.Nodes[i])
		}
	}
}

// TestScraperBounds scrapes real proxies under traffic 60 times: every
// ring stays at Retention/Interval slots, series beyond MaxSeries are
// left out and reported, and a proxy that leaves is forgotten.
func TestScraperBounds(t *testing.T) {
	tm := newTestMesh(t)
	var mu sync.Mutex
	targets := tm.admins()
	opts := dashboard.ScrapeOptions{Interval: time.Second, Retention: 5 * time.Second, MaxSeries: 3,
		Targets: func() []dashboard.Target {
			mu.Lock()
			defer mu.Unlock()
			var out []dashboard.Target
			for _, a := range targets {
				out = append(out, dashboard.Target{ID: a.id, Admin: a.admin})
			}
			return out
		}}
	s := dashboard.NewScraper(opts)
	ctx := context.Background()
	now := time.Now()
	hosts := []string{"product-service:9080", "reviews:9080", "ratings:9080"}
	for i := 0; i < 60; i++ {
		tm.send(t, hosts[i%3], "/", 1, 200)
		if i%7 == 0 {
			tm.send(t, "reviews:9080", "/fail", 1, 503)
		}
		now = now.Add(time.Second)
		s.ScrapeOnce(ctx, now)
		b := s.Bounds()
		if b.SlotsPerProxy != 5 || b.Slots > 5*len(targets) || b.Series > (5+1)*3*len(targets) {
			t.Fatalf("scrape %d: bounds exceeded: %+v", i, b)
		}
	}
	tr, _ := s.Traffic(ctx, time.Hour)
	found := false
	for _, e := range tr.Errors {
		found = found || strings.Contains(e, "beyond the limit of 3")
	}
	if !found {
		t.Errorf("the client's series over MaxSeries are not reported: %v", tr.Errors)
	}
	mu.Lock()
	targets = targets[:2]
	mu.Unlock()
	s.ScrapeOnce(ctx, now.Add(time.Second))
	if b := s.Bounds(); b.Proxies != 2 {
		t.Errorf("proxies that left are kept: %+v", b)
	}
}
