package istiometrics

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// HTTPRequest is a completed request as the connection manager saw it.
type HTTPRequest struct {
	Info *httpfilter.RequestInfo
	// Conn is the downstream connection (its verified peer principal).
	Conn *httpfilter.Conn
	// Inbound: the request arrived on an inbound listener, so this proxy
	// is the server sidecar and reports as reporter=destination; else it
	// is a client sidecar or a gateway (reporter=source, as Istio's
	// gateways report).
	Inbound bool
	// Authority is the request's :authority (Host).
	Authority string
	// GRPC: the request was gRPC (request_protocol grpc), and GRPCStatus
	// its answer's grpc-status ("" when none).
	GRPC       bool
	GRPCStatus string
	// RouteCluster is the matched route's cluster, used when the request
	// was answered before the router picked one (Info.Cluster empty).
	RouteCluster string
}

// httpKey is what an HTTP request's label values depend on: one pre-bound
// set of observers per distinct key.
type httpKey struct {
	peer       string // the other side's raw x-envoy-peer-metadata
	principal  string // the downstream's verified principal (inbound mTLS)
	service    string // outbound: the cluster; inbound: the authority
	grpcStatus string
	code       int
	flags      httpfilter.Flags
	grpc       bool
	inbound    bool
	mtls       bool
}

type httpObservers struct {
	requests                      prometheus.Counter
	duration, reqBytes, respBytes prometheus.Observer
}

// RecordHTTP counts one completed request. The label values are resolved
// once per distinct key and the bound observers kept, so a request with a
// known key costs a lock-free map read and four atomic updates.
func (m *Metrics) RecordHTTP(r *HTTPRequest) {
	info := r.Info
	k := httpKey{peer: info.PeerMetadata, code: info.Status, flags: info.Flags, grpc: r.GRPC,
		grpcStatus: r.GRPCStatus, inbound: r.Inbound}
	if r.Inbound {
		k.service = r.Authority
		if c := r.Conn; c != nil && c.TLS != nil && c.PeerPrincipal != "" {
			k.mtls, k.principal = true, c.PeerPrincipal
		}
	} else {
		k.service = info.Cluster
		if k.service == "" {
			k.service = r.RouteCluster
		}
		if k.service == "" || !strings.HasPrefix(k.service, "outbound|") {
			k.service = r.Authority
		}
	}
	obs, ok := m.http.get(k)
	if !ok {
		obs = m.bindHTTP(&k)
		m.http.put(k, obs)
	}
	obs.requests.Inc()
	if !info.Start.IsZero() {
		obs.duration.Observe(float64(time.Since(info.Start)) / float64(time.Millisecond))
	}
	obs.reqBytes.Observe(float64(info.BytesReceived))
	obs.respBytes.Observe(float64(info.BytesSent))
}

func (m *Metrics) bindHTTP(k *httpKey) *httpObservers {
	proto := "http"
	if k.grpc {
		proto = "grpc"
	}
	ls := m.resolve(k.inbound, k.peer, k.principal, k.mtls, k.service, proto)
	ls.responseCode, ls.grpcStatus, ls.flags = strconv.Itoa(k.code), k.grpcStatus, k.flags.String()
	vals := ls.values(true)
	return &httpObservers{
		requests:  m.requests.WithLabelValues(vals...),
		duration:  m.duration.WithLabelValues(vals...),
		reqBytes:  m.reqBytes.WithLabelValues(vals...),
		respBytes: m.respBytes.WithLabelValues(vals...),
	}
}
