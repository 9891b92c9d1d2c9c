package dashboard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"
)

// Target is a proxy whose admin endpoint is scraped.
type Target struct {
	ID    string
	Admin string
}

// ScrapeOptions configure a Scraper.
type ScrapeOptions struct {
	// Targets lists the proxies to scrape now (the connected ones); a
	// proxy no longer listed is forgotten.
	Targets func() []Target
	// Interval between scrapes (default 5s).
	Interval time.Duration
	// Retention is how much history each proxy's ring keeps (default
	// 15m); the ring has Retention/Interval slots.
	Retention time.Duration
	// MaxSeries bounds the series kept per proxy (default 2000).
	MaxSeries int
	// MaxProxies bounds the proxies scraped (default 1000).
	MaxProxies int
	// Client fetches /stats/prometheus (default: a client with a 3s
	// timeout).
	Client *http.Client
}

// maxScrapeBytes bounds one proxy's /stats/prometheus read.
const maxScrapeBytes = 16 << 20

// Scraper reads every proxy's <admin>/stats/prometheus each interval and
// keeps per proxy a bounded ring of the deltas between scrapes, from which
// Traffic computes rates over a window.
type Scraper struct {
	opts ScrapeOptions

	mu      sync.Mutex
	proxies map[string]*proxyState
}

type proxyState struct {
	admin string
	// last are the cumulative counts of the last good scrape.
	last   map[Key]*Counts
	lastAt time.Time
	ring   *ring
	err    string
	// dropped is how many series the last scrape left out (MaxSeries).
	dropped int
}

// NewScraper makes a scraper; Run starts it.
func NewScraper(opts ScrapeOptions) *Scraper {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Retention <= 0 {
		opts.Retention = 15 * time.Minute
	}
	if opts.MaxSeries <= 0 {
		opts.MaxSeries = 2000
	}
	if opts.MaxProxies <= 0 {
		opts.MaxProxies = 1000
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 3 * time.Second}
	}
	return &Scraper{opts: opts, proxies: map[string]*proxyState{}}
}

// Run scrapes every interval until ctx ends.
func (s *Scraper) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		s.ScrapeOnce(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ScrapeOnce scrapes every target once, at most 8 at a time, records the
// deltas since each one's last scrape and forgets proxies no longer listed.
func (s *Scraper) ScrapeOnce(ctx context.Context, now time.Time) {
	targets := s.opts.Targets()
	sort.Slice(targets, func(i, j int) bool { return targets[i].ID < targets[j].ID })
	if len(targets) > s.opts.MaxProxies {
		targets = targets[:s.opts.MaxProxies]
	}
	s.evict(targets)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, t := range targets {
		if t.Admin == "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			cur, dropped, err := s.fetch(ctx, t.Admin)
			s.record(t, cur, dropped, err, now)
		}()
	}
	wg.Wait()
}

// evict forgets the proxies that left, so the map is bounded by the
// proxies connected now.
func (s *Scraper) evict(targets []Target) {
	keep := make(map[string]bool, len(targets))
	for _, t := range targets {
		keep[t.ID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.proxies {
		if !keep[id] {
			delete(s.proxies, id)
		}
	}
}

func (s *Scraper) fetch(ctx context.Context, admin string) (map[Key]*Counts, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/stats/prometheus", nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("%s/stats/prometheus: %s", admin, resp.Status)
	}
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, maxScrapeBytes))
	if err != nil {
		return nil, 0, fmt.Errorf("%s/stats/prometheus: %w", admin, err)
	}
	cur, dropped := parseFamilies(fams, s.opts.MaxSeries)
	return cur, dropped, nil
}

// record stores one scrape: the deltas since the proxy's last good scrape
// go into its ring (a first scrape, or one at a new admin address, only
// sets the base).
func (s *Scraper) record(t Target, cur map[Key]*Counts, dropped int, err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.proxies[t.ID]
	if st == nil || st.admin != t.Admin {
		st = &proxyState{admin: t.Admin, ring: newRing(int(s.opts.Retention / s.opts.Interval))}
		s.proxies[t.ID] = st
	}
	if err != nil {
		st.err = err.Error()
		return
	}
	st.err, st.dropped = "", dropped
	if st.last != nil {
		deltas := map[Key]*Counts{}
		for k, c := range cur {
			if d := delta(c, st.last[k]); !d.zero() {
				deltas[k] = d
			}
		}
		st.ring.push(slot{at: now, dt: now.Sub(st.lastAt), deltas: deltas})
	}
	st.last, st.lastAt = cur, now
}

// Traffic is the per-second rates of every series over the last window,
// summed over the proxies (each proxy's deltas divided by the time its
// intervals in the window cover).
func (s *Scraper) Traffic(_ context.Context, window time.Duration) (*Traffic, error) {
	now := time.Now()
	out := &Traffic{Source: SourceProxies, Window: window, Rates: map[Key]*Counts{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.proxies))
	for id := range s.proxies {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		st := s.proxies[id]
		if st.err != "" {
			out.Errors = append(out.Errors, id+": "+st.err)
		}
		if st.dropped > 0 {
			out.Errors = append(out.Errors, fmt.Sprintf("%s: %d series beyond the limit of %d left out", id, st.dropped, s.opts.MaxSeries))
		}
		sums := map[Key]*Counts{}
		covered := st.ring.sum(now.Add(-window), sums)
		if covered <= 0 {
			continue
		}
		for k, c := range sums {
			r := out.Rates[k]
			if r == nil {
				r = &Counts{}
				out.Rates[k] = r
			}
			r.add(c, 1/covered.Seconds())
		}
	}
	return out, nil
}

// Bounds are the scraper's sizes, for tests and /dashboard/api/debug.
type Bounds struct {
	Proxies int `json:"proxies"`
	// Slots is the ring slots in use, over all proxies.
	Slots int `json:"slots"`
	// SlotsPerProxy is each ring's size.
	SlotsPerProxy int `json:"slots_per_proxy"`
	// Series is the series held in all rings and bases.
	Series    int `json:"series"`
	MaxSeries int `json:"max_series_per_proxy"`
}

// Bounds reports the memory the scraper holds.
func (s *Scraper) Bounds() Bounds {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := Bounds{Proxies: len(s.proxies), SlotsPerProxy: int(s.opts.Retention / s.opts.Interval), MaxSeries: s.opts.MaxSeries}
	for _, st := range s.proxies {
		b.Slots += st.ring.n
		b.Series += st.ring.series() + len(st.last)
	}
	return b
}
