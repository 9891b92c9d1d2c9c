package dashboard

import (
	"math"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/pkg/analysis"
	"github.com/sluice-mesh/sluice/pkg/config"
)

var inf = math.Inf(1)

// TestQuantile checks histogram_quantile's interpolation against values
// worked by hand: 100 observations, 50 at or below 10 ms, 90 at or below
// 25, 100 at or below 50.
func TestQuantile(t *testing.T) {
	b := []Bucket{{5, 20}, {10, 50}, {25, 90}, {50, 100}, {inf, 100}}
	for _, c := range []struct{ q, want float64 }{
		{0.5, 10},   // rank 50 ends the (5,10] bucket
		{0.2, 5},    // rank 20 ends the first bucket
		{0.1, 2.5},  // rank 10 is half of the first bucket, which starts at 0
		{0.7, 17.5}, // rank 70: 20 of 40 into (10,25]
		{0.99, 47.5},
	} {
		if got := quantile(c.q, b); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%.2f: want %v, got %v", c.q, c.want, got)
		}
	}
	// A rank in the +Inf bucket answers the highest finite bound.
	if got := quantile(0.99, []Bucket{{10, 50}, {inf, 100}}); got != 10 {
		t.Errorf("rank in +Inf: want 10, got %v", got)
	}
	if got := quantile(0.5, []Bucket{{10, 0}, {inf, 0}}); !math.IsNaN(got) {
		t.Errorf("no observations: want NaN, got %v", got)
	}
}

// TestDeltaCounterReset: a counter that went down restarted, so the new
// value is the delta (Prometheus' rate() reset rule), buckets included.
func TestDeltaCounterReset(t *testing.T) {
	prev := &Counts{Requests: 100, Buckets: []Bucket{{10, 80}, {inf, 100}}}
	cur := &Counts{Requests: 130, Buckets: []Bucket{{10, 100}, {inf, 130}}}
	if d := delta(cur, prev); d.Requests != 30 || d.Buckets[0].Count != 20 || d.Buckets[1].Count != 30 {
		t.Errorf("delta: %+v", d)
	}
	restarted := &Counts{Requests: 7, Buckets: []Bucket{{10, 7}, {inf, 7}}}
	if d := delta(restarted, prev); d.Requests != 7 || d.Buckets[0].Count != 7 || d.Buckets[1].Count != 7 {
		t.Errorf("after a reset: %+v", d)
	}
}

// TestRingBoundedAndWindowed: the ring never holds more than its size,
// and sums only the intervals inside the window.
func TestRingBoundedAndWindowed(t *testing.T) {
	r := newRing(4)
	k := Key{Reporter: "source"}
	t0 := time.Unix(1000, 0)
	for i := 1; i <= 10; i++ {
		r.push(slot{at: t0.Add(time.Duration(i) * time.Second), dt: time.Second, deltas: map[Key]*Counts{k: {Requests: float64(i)}}})
		if r.n > 4 || len(r.slots) != 4 {
			t.Fatalf("ring grew: %d slots, %d used", len(r.slots), r.n)
		}
	}
	sums := map[Key]*Counts{}
	covered := r.sum(t0.Add(8*time.Second), sums) // intervals ending at 9 s and 10 s
	if covered != 2*time.Second || sums[k].Requests != 19 {
		t.Errorf("window: covered %v, requests %v; want 2s, 19", covered, sums[k].Requests)
	}
	sums = map[Key]*Counts{}
	if covered := r.sum(t0, sums); covered != 4*time.Second || sums[k].Requests != 7+8+9+10 {
		t.Errorf("whole ring: covered %v, requests %v", covered, sums[k].Requests)
	}
}

// TestHealthThresholds: 5xx above 0.1% degraded and above 10% failure;
// 4xx are not in the error ratio.
func TestHealthThresholds(t *testing.T) {
	for _, c := range []struct {
		req, errs float64
		want      string
	}{{0, 0, Idle}, {1000, 0, Healthy}, {1000, 1, Healthy}, {1000, 2, Degraded}, {100, 10, Degraded}, {100, 11, Failure}} {
		if got := healthOf(c.req, c.errs); got != c.want {
			t.Errorf("%v of %v: want %s, got %s", c.errs, c.req, c.want, got)
		}
	}
	if isError("404") || !isError("503") || isError("0") {
		t.Error("isError: only 5xx")
	}
	// Kiali's other default tolerances: 4xx degraded above 10% and
	// failing above 20%; no response ("0") failing above 10%.
	for _, c := range []struct {
		codes map[string]float64
		want  string
	}{
		{map[string]float64{"200": 90, "404": 10}, Healthy},
		{map[string]float64{"200": 89, "404": 11}, Degraded},
		{map[string]float64{"200": 79, "403": 21}, Failure},
		{map[string]float64{"200": 90, "0": 10}, Healthy},
		{map[string]float64{"200": 89, "0": 11}, Failure},
		{map[string]float64{"200": 85, "404": 12, "503": 3}, Degraded},
	} {
		total := 0.0
		for _, v := range c.codes {
			total += v
		}
		if got := healthOfCodes(total, c.codes); got != c.want {
			t.Errorf("%v: want %s, got %s", c.codes, c.want, got)
		}
	}
}

// TestChosenReporter: where the destination reported an edge its series
// are used, else the source's (proxy-made answers, unknown peers).
func TestChosenReporter(t *testing.T) {
	base := Key{SourceWorkload: "a", SourceNamespace: "ns", DestService: "b.ns.svc.cluster.local", DestWorkload: "b", DestNamespace: "ns", ResponseCode: "200"}
	src, dst := base, base
	src.Reporter, dst.Reporter = "source", "destination"
	uh := src
	uh.DestWorkload, uh.DestNamespace, uh.ResponseCode = "unknown", "unknown", "503"
	got := chosen(map[Key]*Counts{src: {Requests: 10}, dst: {Requests: 9}, uh: {Requests: 1}})
	if len(got) != 2 || got[dst] == nil || got[uh] == nil {
		t.Errorf("chosen: %v", got)
	}
}

// TestConfigEntries: admitted, warned, rejected (with the last good
// version in force) and not enforced resources, each with its messages.
func TestConfigEntries(t *testing.T) {
	vs := &config.Resource{Kind: config.KindVirtualService, Meta: config.Meta{Name: "r", Namespace: "default"}, Source: config.Source{File: "a.yaml", Doc: 1}}
	key := vs.Key()
	dr := &config.Resource{Kind: config.KindDestinationRule, Meta: config.Meta{Name: "ok", Namespace: "default"}, Source: config.Source{File: "e.yaml", Doc: 1}}
	entries := ConfigEntries(ConfigInput{
		Resources: []*config.Resource{vs, dr},
		Errors: config.Errors{
			{Source: config.Source{File: "a.yaml", Doc: 1}, Key: key, Field: "spec.http[0]", Err: errString("bad")},
			{Source: config.Source{File: "b.yaml", Doc: 2}, Key: config.Key{Kind: config.KindDestinationRule, Namespace: "default", Name: "x"}, Err: errString("worse")},
			{Source: config.Source{File: "c.yaml"}, Err: errString("not yaml")},
		},
		NotEnforced: []config.NotEnforced{{Kind: "telemetry.istio.io/Telemetry", Name: "t", File: "d.yaml", Reason: "later"}},
		Analysis: map[string][]analysis.Finding{
			"VirtualService default/r":   {{Code: "IST0101", Level: "Error", Message: "Referenced host not found"}},
			"DestinationRule default/ok": {{Code: "SLU0004", Level: "Warning", Message: "no endpoint"}},
			"Gateway default/nobody":     {{Code: "IST0101", Level: "Error", Message: "not an entry"}},
		},
	})
	if len(entries) != 5 {
		t.Fatalf("want 5 entries, got %+v", entries)
	}
	byName := map[string]ConfigEntry{}
	for _, e := range entries {
		byName[e.Name] = e
	}
	if e := byName["r"]; e.Status != StatusError || len(e.Messages) != 3 || e.Messages[0] != "the last valid version is in force" ||
		e.Messages[2] != "Error [IST0101] Referenced host not found" {
		t.Errorf("rejected edit of an admitted resource, with an analysis message: %+v", e)
	}
	if e := byName["ok"]; e.Status != StatusWarning || len(e.Messages) != 1 || e.Messages[0] != "Warning [SLU0004] no endpoint" {
		t.Errorf("a valid resource the analysis warns about: %+v", e)
	}
	if e := byName["x"]; e.Status != StatusError || e.Kind != "DestinationRule" {
		t.Errorf("rejected resource: %+v", e)
	}
	if e := byName["t"]; e.Status != StatusNotEnforced || e.Messages[0] != "later" {
		t.Errorf("not enforced: %+v", e)
	}
	if e := entries[len(entries)-1]; e.Name != "" || e.Status != StatusError {
		t.Errorf("an error naming no resource comes last: %+v", e)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
