// Package telemetryexpr is the value expressions of Istio's Telemetry API
// metrics tagOverrides (and the istio.stats filter's dimensions): CEL
// over Envoy's request attributes
// (envoyproxy.io "Attributes": request.*, response.*, source.*,
// destination.*, connection.*) and Istio's peer metadata
// (upstream_peer.* / downstream_peer.*, also written
// filter_state.upstream_peer.*, istio.io "Customizing Istio Metrics").
//
// Check parses and type-checks an expression with cel-go and refuses any
// attribute the proxy does not have, naming it; Compile turns the common
// forms (one attribute, a header, a literal) into direct accessors that
// read the request without evaluating CEL, and anything else into a
// cel-go program evaluated per request.
package telemetryexpr

import (
	"net/http"
	"net/netip"
)

// Peer is a workload's metadata as the peer attributes expose it (Istio's
// WorkloadMetadataObject: app, version, service, revision, name,
// namespace, type, workload, cluster).
type Peer struct {
	Name, Namespace, Workload, App, Version string
	Service, Revision, Cluster, Type        string
	// Labels are the workload's labels, read as labels['k'].value.
	Labels map[string]string
}

// field is the Peer field an attribute name reads; false for none.
func (p *Peer) field(name string) (string, bool) {
	if p == nil {
		return "", false
	}
	var v string
	switch name {
	case "app":
		v = p.App
	case "version":
		v = p.Version
	case "service":
		v = p.Service
	case "revision":
		v = p.Revision
	case "name":
		v = p.Name
	case "namespace":
		v = p.Namespace
	case "type":
		v = p.Type
	case "workload":
		v = p.Workload
	case "cluster":
		v = p.Cluster
	default:
		return "", false
	}
	return v, v != ""
}

// Attrs is what an expression reads: one completed request (Request
// set) or one TCP connection (Request nil: the request and response
// attributes are absent).
type Attrs struct {
	Request *http.Request
	// ResponseHeader, ResponseCode, ResponseDetails and GRPCStatus are
	// the answer sent to the client.
	ResponseHeader  http.Header
	ResponseCode    int
	ResponseDetails string
	GRPCStatus      string
	// Source is the downstream's address, Destination the address it
	// connected to.
	Source, Destination netip.AddrPort
	// MTLS: the downstream connection presented a verified client
	// certificate; SNI is the server name it asked for.
	MTLS bool
	SNI  string
	// Upstream is the peer the upstream's answer named (client side),
	// Downstream the peer the request named (server side); nil when
	// unknown.
	Upstream, Downstream *Peer
}

// attributes are the fields of each root variable that the proxy has,
// with their CEL kind (for the direct accessors' string conversion).
var attributes = map[string]map[string]bool{
	"request": {"headers": true, "host": true, "method": true, "path": true, "url_path": true, "scheme": true,
		"protocol": true, "id": true, "useragent": true, "referer": true, "query": true},
	"response":        {"code": true, "code_details": true, "grpc_status": true, "headers": true},
	"source":          {"address": true, "port": true},
	"destination":     {"address": true, "port": true},
	"connection":      {"mtls": true, "requested_server_name": true},
	"upstream_peer":   peerFields,
	"downstream_peer": peerFields,
}

var peerFields = map[string]bool{"app": true, "version": true, "service": true, "revision": true, "name": true,
	"namespace": true, "type": true, "workload": true, "cluster": true, "labels": true}
