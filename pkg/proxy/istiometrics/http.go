package istiometrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/telemetryexpr"
)

// HTTPRequest is a completed request as the connection manager saw it.
type HTTPRequest struct {
	Info *httpfilter.RequestInfo
	// Config is the chain's stats filter config (nil: DefaultConfig).
	Config *Config
	// Conn is the downstream connection (its verified peer principal).
	Conn *httpfilter.Conn
	// Inbound: the request arrived on an inbound listener, so this proxy
	// is the server sidecar and reports as reporter=destination; else it
	// is a client sidecar or a gateway (reporter=source, as Istio's
	// gateways report).
	Inbound bool
	// Request is the request as received (its :authority names the
	// destination service when no cluster does; value expressions read
	// it), ResponseHeader the answer's headers.
	Request        *http.Request
	ResponseHeader http.Header
	// GRPC: the request was gRPC (request_protocol grpc), and GRPCStatus
	// its answer's grpc-status ("" when none). RequestMessages and
	// ResponseMessages are the gRPC messages each side sent.
	GRPC                              bool
	GRPCStatus                        string
	RequestMessages, ResponseMessages uint64
	// RouteCluster is the matched route's cluster, used when the request
	// was answered before the router picked one (Info.Cluster empty).
	RouteCluster string
	// Service is the destination service of the request's cluster from
	// its metadata (nil when it has none).
	Service *Service
}

// httpKey is what an HTTP request's label values depend on: one pre-bound
// set of observers per distinct key.
type httpKey struct {
	cfg        *Config
	svc        *Service
	peer       string // the other side's raw x-envoy-peer-metadata
	principal  string // the other side's verified principal (see sides)
	local      string // this proxy's upstream principal (outbound TLS)
	cluster    string
	authority  string // only when the destination service falls back to it
	grpcStatus string
	code       int
	flags      httpfilter.Flags
	grpc       bool
	inbound    bool
	mtls       bool
	exprs      [maxKeyExprs]string
}

type httpObservers struct {
	requests, reqMsgs, respMsgs   prometheus.Counter
	duration, reqBytes, respBytes prometheus.Observer
}

// RecordHTTP counts one completed request. The label values are resolved
// once per distinct key and the bound observers kept, so a request with a
// known key costs a lock-free map read and a few atomic updates; a config
// with expression dimensions evaluates them first (they are part of the
// key).
func (m *Metrics) RecordHTTP(r *HTTPRequest) {
	info := r.Info
	cfg := r.Config
	if cfg == nil {
		cfg = DefaultConfig
	}
	k := httpKey{cfg: cfg, svc: r.Service, peer: info.PeerMetadata, code: info.Status, flags: info.Flags, grpc: r.GRPC,
		grpcStatus: r.GRPCStatus, inbound: r.Inbound, cluster: info.Cluster}
	if k.cluster == "" {
		k.cluster = r.RouteCluster
	}
	if r.Inbound {
		if c := r.Conn; c != nil && c.TLS != nil && c.PeerPrincipal != "" {
			k.mtls, k.principal = true, c.PeerPrincipal
		}
	} else {
		k.principal, k.local = info.UpstreamPeerPrincipal, info.UpstreamLocalPrincipal
	}
	if k.svc == nil && !cfg.noHostFallback && !isOutboundCluster(k.cluster) && r.Request != nil {
		k.authority = r.Request.Host
	}
	fams := m.fams.Load()
	var obs *httpObservers
	switch {
	case len(cfg.exprs) == 0:
		var ok bool
		if obs, ok = fams.http.get(k); !ok {
			obs = m.bindHTTP(fams, &k, nil)
			fams.http.put(k, obs)
		}
	case len(cfg.exprs) <= maxKeyExprs:
		a := m.httpAttrs(r)
		for i, x := range cfg.exprs {
			k.exprs[i] = x.Eval(a)
		}
		var ok bool
		if obs, ok = fams.http.get(k); !ok {
			obs = m.bindHTTP(fams, &k, k.exprs[:len(cfg.exprs)])
			fams.http.put(k, obs)
		}
	default:
		a := m.httpAttrs(r)
		vals := make([]string, len(cfg.exprs))
		for i, x := range cfg.exprs {
			vals[i] = x.Eval(a)
		}
		obs = m.bindHTTP(fams, &k, vals)
	}
	obs.record(r)
}

func (o *httpObservers) record(r *HTTPRequest) {
	info := r.Info
	if o.requests != nil {
		o.requests.Inc()
	}
	if o.duration != nil && !info.Start.IsZero() {
		o.duration.Observe(float64(time.Since(info.Start)) / float64(time.Millisecond))
	}
	if o.reqBytes != nil {
		o.reqBytes.Observe(float64(info.BytesReceived))
	}
	if o.respBytes != nil {
		o.respBytes.Observe(float64(info.BytesSent))
	}
	if r.GRPC {
		if o.reqMsgs != nil {
			o.reqMsgs.Add(float64(r.RequestMessages))
		}
		if o.respMsgs != nil {
			o.respMsgs.Add(float64(r.ResponseMessages))
		}
	}
}

func isOutboundCluster(c string) bool { return len(c) > 9 && c[:9] == "outbound|" }

// httpAttrs is what value expressions read of a request.
func (m *Metrics) httpAttrs(r *HTTPRequest) *telemetryexpr.Attrs {
	a := &telemetryexpr.Attrs{Request: r.Request, ResponseHeader: r.ResponseHeader, ResponseCode: r.Info.Status,
		ResponseDetails: r.Info.Details, GRPCStatus: r.GRPCStatus}
	m.connAttrs(a, r.Conn, r.Inbound, r.Info.PeerMetadata)
	return a
}

// connAttrs fills the connection's and the peers' attributes.
func (m *Metrics) connAttrs(a *telemetryexpr.Attrs, c *httpfilter.Conn, inbound bool, peerRaw string) {
	if c != nil {
		a.Source, a.Destination, a.SNI = c.RemoteAddr, c.LocalAddr, c.ServerName
		a.MTLS = c.TLS != nil && c.PeerPrincipal != ""
	}
	if peerRaw == "" {
		return
	}
	if p := m.peer(peerRaw); p != unknownPeer {
		if inbound {
			a.Downstream = &p.Peer
		} else {
			a.Upstream = &p.Peer
		}
	}
}

func (m *Metrics) bindHTTP(fams *families, k *httpKey, exprVals []string) *httpObservers {
	proto := "http"
	if k.grpc {
		proto = "grpc"
	}
	ls := m.resolve(sides{inbound: k.inbound, peerRaw: k.peer, principal: k.principal, local: k.local, mtls: k.mtls},
		destination{svc: k.svc, cluster: k.cluster, authority: k.authority}, proto)
	ls.responseCode, ls.grpcStatus, ls.flags = strconv.Itoa(k.code), k.grpcStatus, k.flags.String()
	c := k.cfg
	counter := func(id metricID) prometheus.Counter {
		if c.plans[id].drop {
			return nil
		}
		f := fams.f[id]
		return f.counter.WithLabelValues(f.values(id, c, ls, exprVals)...)
	}
	histogram := func(id metricID) prometheus.Observer {
		if c.plans[id].drop {
			return nil
		}
		f := fams.f[id]
		return f.histogram.WithLabelValues(f.values(id, c, ls, exprVals)...)
	}
	o := &httpObservers{requests: counter(mRequests), duration: histogram(mDuration),
		reqBytes: histogram(mRequestBytes), respBytes: histogram(mResponseBytes)}
	if k.grpc {
		o.reqMsgs, o.respMsgs = counter(mRequestMessages), counter(mResponseMessages)
	}
	return o
}
