// Package dashboard is sluice's built-in mesh dashboard, served by
// `sluice control` at /dashboard/: a live service graph, a page per service
// and workload, the config with its validation messages and the proxies'
// sync state. Its metrics come from a Prometheus when one is configured
// (prom.go) or from the proxies' own /stats/prometheus, scraped into
// bounded rings of deltas (scrape.go, ring.go).
package dashboard

import (
	"math"
	"sort"
	"strconv"

	dto "github.com/prometheus/client_model/go"
)

// Istio's standard metric names (docs/observability.md) the dashboard reads.
const (
	metricRequests    = "istio_requests_total"
	metricDuration    = "istio_request_duration_milliseconds"
	metricTCPSent     = "istio_tcp_sent_bytes_total"
	metricTCPReceived = "istio_tcp_received_bytes_total"
	metricTCPOpened   = "istio_tcp_connections_opened_total"
)

// Key is one traffic series: the Istio labels the dashboard groups by,
// the same set Kiali's graph queries keep.
type Key struct {
	Reporter          string `json:"reporter"`
	SourceWorkload    string `json:"source_workload"`
	SourceNamespace   string `json:"source_workload_namespace"`
	DestService       string `json:"destination_service"`
	DestWorkload      string `json:"destination_workload"`
	DestNamespace     string `json:"destination_workload_namespace"`
	Protocol          string `json:"request_protocol"`
	ResponseCode      string `json:"response_code"`
	ResponseFlags     string `json:"response_flags"`
	SecurityPolicy    string `json:"connection_security_policy"`
	DestCanonicalName string `json:"destination_canonical_service"`
}

// groupLabels are the labels of Key, in PromQL "by" order.
var groupLabels = []string{"reporter", "source_workload", "source_workload_namespace", "destination_service",
	"destination_workload", "destination_workload_namespace", "request_protocol", "response_code",
	"response_flags", "connection_security_policy", "destination_canonical_service"}

// keyFrom builds a Key from a label lookup; a missing label is "unknown",
// as Istio fills an unknown peer.
func keyFrom(get func(string) string) Key {
	v := func(n string) string {
		if s := get(n); s != "" {
			return s
		}
		return "unknown"
	}
	return Key{Reporter: v("reporter"), SourceWorkload: v("source_workload"), SourceNamespace: v("source_workload_namespace"),
		DestService: v("destination_service"), DestWorkload: v("destination_workload"), DestNamespace: v("destination_workload_namespace"),
		Protocol: v("request_protocol"), ResponseCode: v("response_code"), ResponseFlags: v("response_flags"),
		SecurityPolicy: v("connection_security_policy"), DestCanonicalName: v("destination_canonical_service")}
}

// Bucket is one cumulative histogram bucket: the count of observations
// at or below LE (milliseconds; +Inf last).
type Bucket struct {
	LE    float64
	Count float64
}

// Counts are one series' values: cumulative totals as scraped, the deltas
// of one scrape interval in a ring, or per-second rates over a window.
type Counts struct {
	Requests float64
	// Buckets are istio_request_duration_milliseconds' cumulative buckets.
	Buckets                         []Bucket
	TCPSent, TCPReceived, TCPOpened float64
}

// add adds o into c; buckets are matched by bound.
func (c *Counts) add(o *Counts, scale float64) {
	c.Requests += o.Requests * scale
	c.TCPSent += o.TCPSent * scale
	c.TCPReceived += o.TCPReceived * scale
	c.TCPOpened += o.TCPOpened * scale
	for _, b := range o.Buckets {
		c.addBucket(b.LE, b.Count*scale)
	}
}

func (c *Counts) addBucket(le, n float64) {
	i := sort.Search(len(c.Buckets), func(i int) bool { return c.Buckets[i].LE >= le })
	if i < len(c.Buckets) && c.Buckets[i].LE == le {
		c.Buckets[i].Count += n
		return
	}
	c.Buckets = append(c.Buckets, Bucket{})
	copy(c.Buckets[i+1:], c.Buckets[i:])
	c.Buckets[i] = Bucket{LE: le, Count: n}
}

// delta is cur - prev for counters; a counter that went down was reset
// (the proxy restarted), so its delta is its new value, as Prometheus'
// rate() treats a reset.
func delta(cur, prev *Counts) *Counts {
	if prev == nil {
		return cur.clone()
	}
	d := &Counts{Requests: counterDelta(cur.Requests, prev.Requests), TCPSent: counterDelta(cur.TCPSent, prev.TCPSent),
		TCPReceived: counterDelta(cur.TCPReceived, prev.TCPReceived), TCPOpened: counterDelta(cur.TCPOpened, prev.TCPOpened)}
	reset := cur.Requests < prev.Requests
	for _, b := range cur.Buckets {
		n := b.Count
		if !reset {
			n = counterDelta(b.Count, prev.bucket(b.LE))
		}
		d.Buckets = append(d.Buckets, Bucket{LE: b.LE, Count: n})
	}
	return d
}

func counterDelta(cur, prev float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

func (c *Counts) bucket(le float64) float64 {
	for _, b := range c.Buckets {
		if b.LE == le {
			return b.Count
		}
	}
	return 0
}

func (c *Counts) clone() *Counts {
	out := *c
	out.Buckets = append([]Bucket(nil), c.Buckets...)
	return &out
}

func (c *Counts) zero() bool {
	return c.Requests == 0 && c.TCPSent == 0 && c.TCPReceived == 0 && c.TCPOpened == 0
}

// parseFamilies turns a proxy's scraped metric families into cumulative
// Counts per Key, keeping at most maxSeries series (the rest are counted
// in dropped).
func parseFamilies(fams map[string]*dto.MetricFamily, maxSeries int) (out map[Key]*Counts, dropped int) {
	out = map[Key]*Counts{}
	get := func(k Key) *Counts {
		c := out[k]
		if c == nil {
			if len(out) >= maxSeries {
				dropped++
				return nil
			}
			c = &Counts{}
			out[k] = c
		}
		return c
	}
	for _, name := range []string{metricRequests, metricDuration, metricTCPSent, metricTCPReceived, metricTCPOpened} {
		fam := fams[name]
		if fam == nil {
			continue
		}
		for _, m := range fam.GetMetric() {
			c := get(keyFrom(labelGetter(m.GetLabel())))
			if c == nil {
				continue
			}
			switch name {
			case metricRequests:
				c.Requests += m.GetCounter().GetValue()
			case metricTCPSent:
				c.TCPSent += m.GetCounter().GetValue()
			case metricTCPReceived:
				c.TCPReceived += m.GetCounter().GetValue()
			case metricTCPOpened:
				c.TCPOpened += m.GetCounter().GetValue()
			case metricDuration:
				h := m.GetHistogram()
				// The +Inf bucket is the sample count, whether or not
				// the exposition listed it.
				for _, b := range h.GetBucket() {
					if !math.IsInf(b.GetUpperBound(), 1) {
						c.addBucket(b.GetUpperBound(), float64(b.GetCumulativeCount()))
					}
				}
				c.addBucket(math.Inf(1), float64(h.GetSampleCount()))
			}
		}
	}
	return out, dropped
}

func labelGetter(labels []*dto.LabelPair) func(string) string {
	return func(n string) string {
		for _, l := range labels {
			if l.GetName() == n {
				return l.GetValue()
			}
		}
		return ""
	}
}

// parseLE reads a Prometheus "le" label.
func parseLE(s string) (float64, bool) {
	if s == "+Inf" {
		return math.Inf(1), true
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}
