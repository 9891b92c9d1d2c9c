package istiometrics

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
	"github.com/sluice-mesh/sluice/pkg/telemetryexpr"
)

// metricID names one of the standard metrics.
type metricID int

const (
	mRequests metricID = iota
	mDuration
	mRequestBytes
	mResponseBytes
	mRequestMessages
	mResponseMessages
	mTCPSent
	mTCPReceived
	mTCPOpened
	mTCPClosed
	numMetrics
)

// metricDef is a standard metric as Istio defines it (istio/proxy
// istio_stats; the stats config names it without the istio_ prefix).
type metricDef struct {
	name, help string
	histogram  bool
	tcp        bool
}

var metricDefs = [numMetrics]metricDef{
	mRequests:         {name: "requests_total", help: "Requests handled by the proxy."},
	mDuration:         {name: "request_duration_milliseconds", help: "Duration of requests in milliseconds.", histogram: true},
	mRequestBytes:     {name: "request_bytes", help: "Request body sizes in bytes.", histogram: true},
	mResponseBytes:    {name: "response_bytes", help: "Response body sizes in bytes.", histogram: true},
	mRequestMessages:  {name: "request_messages_total", help: "gRPC messages sent by the client on gRPC requests."},
	mResponseMessages: {name: "response_messages_total", help: "gRPC messages sent by the server on gRPC requests."},
	mTCPSent:          {name: "tcp_sent_bytes_total", help: "Bytes sent to the downstream of TCP connections.", tcp: true},
	mTCPReceived:      {name: "tcp_received_bytes_total", help: "Bytes received from the downstream of TCP connections.", tcp: true},
	mTCPOpened:        {name: "tcp_connections_opened_total", help: "TCP connections opened.", tcp: true},
	mTCPClosed:        {name: "tcp_connections_closed_total", help: "TCP connections closed.", tcp: true},
}

// standardLabels is a metric's label set without overrides.
func (d *metricDef) standardLabels() []string {
	if d.tcp {
		return tcpLabels
	}
	return Labels
}

// Config is one istio.stats filter's configuration (Istio's
// stats.PluginConfig) compiled: per metric, whether it is dropped, which
// labels are removed and which are set from expressions. A filter chain
// records its requests with its Config; a chain without the filter
// records nothing.
type Config struct {
	plans [numMetrics]plan
	// exprs are the distinct non-literal expressions of all dimensions,
	// evaluated once per request; a dimension reads its value by index.
	exprs []*telemetryexpr.Expr
	// noHostFallback: the destination service is never taken from the
	// request's authority (disable_host_header_fallback, set by istiod on
	// inbound and gateway listeners).
	noHostFallback bool
}

// plan is what one metric records under a Config.
type plan struct {
	drop    bool
	removed map[string]bool
	// dims are the upserted labels by name: a literal value, or the
	// index of an expression in Config.exprs.
	dims map[string]dim
}

type dim struct {
	value string
	expr  int // -1 for a literal
}

// DefaultConfig is a stats filter without overrides: every standard
// metric with Istio's standard labels.
var DefaultConfig = &Config{}

// maxKeyExprs bounds the expression values a request's cache key holds;
// a Config with more is resolved on every request (correct, slower).
const maxKeyExprs = 4

// pluginFields and metricFields are the PluginConfig and MetricConfig
// fields Compile reads; any other field set (one a newer istio.io/api
// adds) is refused by name.
var (
	pluginFields = map[protoreflect.Name]bool{"debug": true, "max_peer_cache_size": true, "stat_prefix": true,
		"field_separator": true, "value_separator": true, "disable_host_header_fallback": true,
		"tcp_reporting_duration": true, "metrics": true, "definitions": true, "reporter": true,
		"rotation_interval": true, "graceful_deletion_interval": true}
	metricFields = map[protoreflect.Name]bool{"dimensions": true, "name": true, "tags_to_remove": true,
		"match": true, "drop": true}
)

// Compile compiles an istio.stats filter's config. What the proxy cannot
// honour is an error naming the field: metric definitions (custom
// metrics), an override's match, a metric name that is not a standard
// one, the SERVER_GATEWAY (waypoint) reporter, a stat prefix other than
// istio_, metric scope rotation, and any expression telemetryexpr
// refuses. The deprecated fields (debug, max_peer_cache_size,
// field_separator, value_separator) shape nothing the Prometheus export
// has; tcp_reporting_duration bounds how late TCP bytes are reported, and
// they are counted as they pass.
func Compile(pc *stats.PluginConfig) (*Config, error) {
	if bad := xdsfields.Unsupported(pc, pluginFields); len(bad) > 0 {
		return nil, fmt.Errorf("%s: not supported", strings.Join(bad, ", "))
	}
	for i, mc := range pc.GetMetrics() {
		if bad := xdsfields.Unsupported(mc, metricFields); len(bad) > 0 {
			return nil, fmt.Errorf("metrics[%d]: %s: not supported", i, strings.Join(bad, ", "))
		}
	}
	if len(pc.GetDefinitions()) > 0 {
		return nil, fmt.Errorf("definitions (custom metrics): not supported")
	}
	if pc.GetReporter() != stats.Reporter_UNSPECIFIED {
		return nil, fmt.Errorf("reporter %s: not supported (the reporter follows the listener's direction)", pc.GetReporter())
	}
	if p := pc.GetStatPrefix(); p != "" && p != "istio_" && p != "istio" {
		return nil, fmt.Errorf("stat_prefix %q: only istio_ is supported", p)
	}
	if pc.GetRotationInterval().AsDuration() != 0 || pc.GetGracefulDeletionInterval() != nil {
		return nil, fmt.Errorf("rotation_interval, graceful_deletion_interval: metric scope rotation is not supported")
	}
	c := &Config{noHostFallback: pc.GetDisableHostHeaderFallback()}
	exprIndex := map[string]int{}
	for i, mc := range pc.GetMetrics() {
		if err := c.apply(mc, exprIndex); err != nil {
			return nil, fmt.Errorf("metrics[%d]: %w", i, err)
		}
	}
	return c, nil
}

// apply adds one MetricConfig, in order: later entries win over earlier
// ones (a removed tag upserted again, or the reverse), as Istio's stats
// filter applies them. An entry without a name applies to every metric.
func (c *Config) apply(mc *stats.MetricConfig, exprIndex map[string]int) error {
	if mc.GetMatch() != "" {
		return fmt.Errorf("match %q: not supported", mc.GetMatch())
	}
	var ids []metricID
	for id := range numMetrics {
		if mc.GetName() == "" || mc.GetName() == metricDefs[id].name {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return fmt.Errorf("name %q: not a standard metric (%s)", mc.GetName(), metricNames())
	}
	names := make([]string, 0, len(mc.GetDimensions()))
	for n := range mc.GetDimensions() {
		names = append(names, n)
	}
	sort.Strings(names)
	dims := map[string]dim{}
	for _, n := range names {
		src := mc.GetDimensions()[n]
		if !telemetryexpr.ValidLabel(n) {
			return fmt.Errorf("dimensions[%q]: not a valid label name", n)
		}
		x, err := telemetryexpr.Compile(src)
		if err != nil {
			return fmt.Errorf("dimensions[%q]: %w", n, err)
		}
		if v, ok := x.Constant(); ok {
			dims[n] = dim{value: v, expr: -1}
			continue
		}
		i, ok := exprIndex[src]
		if !ok {
			i = len(c.exprs)
			exprIndex[src] = i
			c.exprs = append(c.exprs, x)
		}
		dims[n] = dim{expr: i}
	}
	for _, id := range ids {
		p := &c.plans[id]
		if mc.GetDrop() {
			p.drop = true
		}
		for _, t := range mc.GetTagsToRemove() {
			if p.removed == nil {
				p.removed = map[string]bool{}
			}
			p.removed[t] = true
			delete(p.dims, t)
		}
		for n, d := range dims {
			if p.dims == nil {
				p.dims = map[string]dim{}
			}
			p.dims[n] = d
			delete(p.removed, n)
		}
	}
	return nil
}

func metricNames() string {
	out := make([]string, 0, numMetrics)
	for _, d := range metricDefs {
		out = append(out, d.name)
	}
	return strings.Join(out, ", ")
}
