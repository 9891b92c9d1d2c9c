package dashboard

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	pmodel "github.com/prometheus/common/model"
)

// Prometheus reads Traffic from a Prometheus' HTTP API (/api/v1/query)
// with the queries Kiali's graph makes: rates of istio_requests_total,
// istio_request_duration_milliseconds_bucket and istio_tcp_* summed by
// the labels of Key.
type Prometheus struct {
	api promv1.API
}

// NewPrometheus is a Prometheus source for address (http://host:port).
func NewPrometheus(address string) (*Prometheus, error) {
	c, err := promapi.NewClient(promapi.Config{Address: address})
	if err != nil {
		return nil, fmt.Errorf("prometheus %q: %w", address, err)
	}
	return &Prometheus{api: promv1.NewAPI(c)}, nil
}

// promQueries are the PromQL rates, by the Counts field they fill.
func promQueries(window time.Duration) map[string]string {
	by := strings.Join(groupLabels, ",")
	w := fmt.Sprintf("%ds", int(window.Seconds()))
	rate := func(metric, extra string) string {
		return fmt.Sprintf("sum by (%s%s) (rate(%s[%s]))", by, extra, metric, w)
	}
	return map[string]string{
		"requests": rate(metricRequests, ""),
		"buckets":  rate(metricDuration+"_bucket", ",le"),
		"sent":     rate(metricTCPSent, ""),
		"received": rate(metricTCPReceived, ""),
		"opened":   rate(metricTCPOpened, ""),
	}
}

// Traffic runs the queries at now.
func (p *Prometheus) Traffic(ctx context.Context, window time.Duration) (*Traffic, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := &Traffic{Source: SourcePrometheus, Window: window, Rates: map[Key]*Counts{}}
	now := time.Now()
	for field, q := range promQueries(window) {
		v, warnings, _, err := p.api.Query(ctx, q, now)
		if err != nil {
			return nil, fmt.Errorf("prometheus: %s: %w", q, err)
		}
		for _, w := range warnings {
			out.Errors = append(out.Errors, "prometheus: "+w)
		}
		vec, ok := v.(pmodel.Vector)
		if !ok {
			return nil, fmt.Errorf("prometheus: %s: a %s, not a vector", q, v.Type())
		}
		for _, s := range vec {
			addSample(out.Rates, field, s)
		}
	}
	return out, nil
}

func addSample(rates map[Key]*Counts, field string, s *pmodel.Sample) {
	val := float64(s.Value)
	if math.IsNaN(val) {
		return
	}
	k := keyFrom(func(n string) string { return string(s.Metric[pmodel.LabelName(n)]) })
	c := rates[k]
	if c == nil {
		c = &Counts{}
		rates[k] = c
	}
	switch field {
	case "requests":
		c.Requests += val
	case "sent":
		c.TCPSent += val
	case "received":
		c.TCPReceived += val
	case "opened":
		c.TCPOpened += val
	case "buckets":
		if le, ok := parseLE(string(s.Metric["le"])); ok {
			c.addBucket(le, val)
		}
	}
}
