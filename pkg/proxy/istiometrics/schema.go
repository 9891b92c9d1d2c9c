package istiometrics

import (
	"slices"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// The label schema. Prometheus wants one label set per metric family,
// while each filter chain's stats config may remove labels or add
// dimensions. A family's label names are the union over the configs in
// force (Configure): a standard label stays while some config keeps it,
// and every dimension any config adds is appended (sorted). A series of a
// config that removes a label, or does not define another config's
// dimension, has it empty, which Prometheus reads as absent. When a
// config change changes a family's label names, the family is rebuilt
// under the new names: its series start again from zero (Prometheus'
// rate() takes that as a counter reset). A change that keeps the names
// keeps the counts.

// family is one metric family under its current label names.
type family struct {
	labels    []string
	counter   *prometheus.CounterVec
	histogram *prometheus.HistogramVec
}

// families are the metric families and the bound-observer caches valid
// for them; a Configure that changes anything makes a new one.
type families struct {
	f [numMetrics]*family
	// reg holds the families. A registry keeps a name's label names for
	// its lifetime (client_golang's Registry.Unregister), so a family
	// rebuilt under new names goes to a new registry with the others.
	reg  *prometheus.Registry
	http cowMap[httpKey, *httpObservers]
	tcp  cowMap[tcpKey, *TCPCounters]
}

// Configure sets the stats configs in force (those of the filter chains
// of the proxy's current config; nil entries are skipped) and so the
// label names of every family. Requests recorded with a config not
// passed here are still counted, with that config's labels mapped onto
// the current names.
func (m *Metrics) Configure(cfgs []*Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.fams.Load()
	next := &families{reg: prometheus.NewRegistry()}
	changed := old == nil
	for id := range numMetrics {
		labels := schemaLabels(id, cfgs)
		if old != nil && slices.Equal(old.f[id].labels, labels) {
			next.f[id] = old.f[id]
			continue
		}
		changed = true
		next.f[id] = newFamily(id, labels)
	}
	if !changed {
		if sameConfigs(m.cfgs, cfgs) {
			return // the same chains' configs: the caches stay warm
		}
		next.reg = old.reg
	} else {
		for _, f := range next.f {
			next.reg.MustRegister(f.collector())
		}
	}
	m.cfgs = slices.Clone(cfgs)
	m.fams.Store(next)
}

// sameConfigs reports whether a and b hold the same configs (as sets).
func sameConfigs(a, b []*Config) bool {
	sa, sb := uniq(a), uniq(b)
	if len(sa) != len(sb) {
		return false
	}
	for c := range sb {
		if !sa[c] {
			return false
		}
	}
	return true
}

func uniq(cs []*Config) map[*Config]bool {
	set := map[*Config]bool{}
	for _, c := range cs {
		set[c] = true
	}
	return set
}

// schemaLabels is the union label set of metric id over cfgs.
func schemaLabels(id metricID, cfgs []*Config) []string {
	std := metricDefs[id].standardLabels()
	keep := map[string]bool{}
	extra := map[string]bool{}
	recorded := false
	for _, c := range cfgs {
		if c == nil || c.plans[id].drop {
			continue
		}
		recorded = true
		p := &c.plans[id]
		for _, l := range std {
			if !p.removed[l] {
				keep[l] = true
			}
		}
		for n := range p.dims {
			keep[n] = true
			if !slices.Contains(std, n) {
				extra[n] = true
			}
		}
	}
	if !recorded {
		// Nothing records the metric: keep Istio's standard labels.
		return std
	}
	out := make([]string, 0, len(std)+len(extra))
	for _, l := range std {
		if keep[l] {
			out = append(out, l)
		}
	}
	start := len(out)
	for n := range extra {
		out = append(out, n)
	}
	sort.Strings(out[start:])
	return out
}

func newFamily(id metricID, labels []string) *family {
	d := &metricDefs[id]
	f := &family{labels: labels}
	name := "istio_" + d.name
	if d.histogram {
		f.histogram = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: d.help, Buckets: DurationBuckets}, labels)
	} else {
		f.counter = prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: d.help}, labels)
	}
	return f
}

func (f *family) collector() prometheus.Collector {
	if f.histogram != nil {
		return f.histogram
	}
	return f.counter
}

// values are the family's label values for a request of config c:
// each label is c's dimension if it sets one, empty if c removes it or
// it is another config's dimension, else the standard value.
func (f *family) values(id metricID, c *Config, ls *labelSet, exprVals []string) []string {
	p := &c.plans[id]
	out := make([]string, len(f.labels))
	for i, l := range f.labels {
		if d, ok := p.dims[l]; ok {
			if d.expr < 0 {
				out[i] = d.value
			} else {
				out[i] = exprVals[d.expr]
			}
			continue
		}
		if p.removed[l] {
			continue
		}
		out[i] = ls.value(l)
	}
	return out
}
