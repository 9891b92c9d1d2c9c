// Package istiometrics is Istio's standard metrics in the proxy
// (istio.io's "Istio Standard Metrics" reference; Envoy's istio_stats
// filter in istio/proxy): the Prometheus registry with
// istio_requests_total, istio_request_duration_milliseconds,
// istio_request_bytes, istio_response_bytes and the four istio_tcp_*
// metrics under Istio's label set; the label resolution per request
// (reporter, both peers, destination service, protocol, code, flags,
// security policy) cached so the request path allocates nothing for it;
// and the HTTP metadata exchange (x-envoy-peer-metadata) that lets each
// reporter fill both sides.
package istiometrics

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-mesh/sluice/pkg/model"
)

// Labels are Istio's standard metric labels, in the order istio.io's
// reference lists them.
var Labels = []string{
	"reporter",
	"source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
	"destination_service", "destination_service_name", "destination_service_namespace", "destination_cluster",
	"request_protocol", "response_code", "grpc_response_status", "response_flags", "connection_security_policy",
	"source_canonical_service", "destination_canonical_service", "source_canonical_revision", "destination_canonical_revision",
}

// tcpLabels are the TCP metrics' labels: Istio's set without the HTTP
// response's (response_code, grpc_response_status).
var tcpLabels = func() []string {
	var out []string
	for _, l := range Labels {
		if l != "response_code" && l != "grpc_response_status" {
			out = append(out, l)
		}
	}
	return out
}()

// DurationBuckets are the histogram buckets of every istio_* histogram:
// Envoy's default buckets (source/common/stats/histogram_impl.cc,
// HistogramSettingsImpl::defaultBuckets), which Istio keeps unless the
// sidecar.istio.io/statsHistogramBuckets annotation says otherwise.
var DurationBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
	300000, 600000, 1800000, 3600000}

// Options configure a proxy's metrics.
type Options struct {
	// Self is the proxy's identity (name, namespace, labels, type).
	Self model.Proxy
	// TrustDomain makes the proxy's SPIFFE principal.
	TrustDomain string
	// Cluster is the proxy's cluster ID (Istio's CLUSTER_ID); "" is
	// DefaultClusterID.
	Cluster string
}

// Metrics is one proxy's standard metrics.
type Metrics struct {
	// fams are the families under the label names of the stats configs
	// in force (schema.go); mu serializes Configure.
	fams atomic.Pointer[families]
	mu   sync.Mutex
	cfgs []*Config // the configs in force (under mu)

	self       *Peer
	selfMTLS   *Peer // self with its principal, for the destination side of an mTLS connection
	selfHeader []string
	selfID     []string

	peers cowMap[string, *Peer]
}

// New makes a proxy's metrics and its own peer metadata, configured with
// DefaultConfig until Configure says otherwise.
func New(opts Options) (*Metrics, error) {
	cluster := opts.Cluster
	if cluster == "" {
		cluster = DefaultClusterID
	}
	id := opts.Self
	// The workload name: Istio's WORKLOAD_NAME is the pod's owner
	// (Deployment); in local mode the proxy's name stands for it.
	workload := id.Name
	hdr, err := encodeSelf(id, workload, cluster)
	if err != nil {
		return nil, err
	}
	m := &Metrics{self: newPeer(id.Name, workload, id.Namespace, cluster, id.Labels),
		selfHeader: []string{hdr}, selfID: []string{id.NodeID()}}
	mtls := *m.self
	td := opts.TrustDomain
	if td == "" {
		td = "cluster.local"
	}
	sa := id.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	mtls.Principal = "spiffe://" + td + "/ns/" + id.Namespace + "/sa/" + sa
	m.selfMTLS = &mtls
	m.Configure([]*Config{DefaultConfig})
	return m, nil
}

// Handler serves the metrics in Prometheus' text format (Envoy admin's
// /stats/prometheus, Istio's :15090/stats/prometheus).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{})
}

// Registry gathers the metrics from the families in force (tests gather
// from it).
func (m *Metrics) Registry() prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return m.fams.Load().reg.Gather() })
}

// SetPeerHeaders puts the proxy's own identity in h: on the outbound
// request of a client sidecar, on the response of a server sidecar. The
// values are the proxy's precomputed slices (never modified).
func (m *Metrics) SetPeerHeaders(h http.Header) {
	h[HeaderPeerMetadataID] = m.selfID
	h[HeaderPeerMetadata] = m.selfHeader
}

// maxCached bounds each cache: past it, new keys are resolved on every
// request (correct, only slower), so hostile peer metadata cannot grow the
// proxy's memory without end.
const maxCached = 4096

// peer is the Peer of a raw x-envoy-peer-metadata value, decoded once.
func (m *Metrics) peer(raw string) *Peer {
	if raw == "" {
		return unknownPeer
	}
	if p, ok := m.peers.get(raw); ok {
		return p
	}
	p, err := decodePeer(raw)
	if err != nil {
		p = unknownPeer
	}
	m.peers.put(raw, p)
	return p
}

// cowMap is a copy-on-write map: reads are one atomic load and a map
// lookup, with no lock and no allocation; a write copies the map (writes
// are rare: one per new label combination).
type cowMap[K comparable, V any] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[K]V]
}

func (c *cowMap[K, V]) get(k K) (V, bool) {
	if p := c.m.Load(); p != nil {
		v, ok := (*p)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

func (c *cowMap[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	n := 0
	if old != nil {
		n = len(*old)
	}
	if n >= maxCached {
		return
	}
	next := make(map[K]V, n+1)
	if old != nil {
		for kk, vv := range *old {
			next[kk] = vv
		}
	}
	next[k] = v
	c.m.Store(&next)
}
