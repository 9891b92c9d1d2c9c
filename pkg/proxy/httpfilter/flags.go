// Package httpfilter is the HTTP filter chain's contract, after Envoy's
// filter factories, filter callbacks and StreamInfo: the filter registry
// (Factory, Filter, Stream; filter.go), the counters kept across pushes
// (Scope; scope.go), the request's RequestInfo (response flags, route,
// cluster, status) and the proxy's own answers (LocalReply). Filter
// packages (filters/fault, filters/cors, filters/router) depend on it, not
// on the connection manager.
package httpfilter

import (
	"net/netip"
	"strings"
	"time"
)

// Flags are Envoy's response flags for one request: why the proxy
// answered itself, or what happened on the way (a retry limit, an injected
// delay). The bit order is Envoy's, so String lists them as Envoy's access
// log does.
type Flags uint32

// Response flags, in Envoy's order.
const (
	FlagLH    Flags = 1 << iota // local service failed health check
	FlagUH                      // no healthy upstream host
	FlagUT                      // upstream request timeout
	FlagLR                      // connection local reset
	FlagUR                      // upstream remote reset
	FlagUF                      // upstream connection failure
	FlagUC                      // upstream connection termination
	FlagUO                      // upstream overflow (circuit breaking)
	FlagNR                      // no route
	FlagDI                      // delay injected by the fault filter
	FlagFI                      // abort injected by the fault filter
	FlagRL                      // rate limited locally
	FlagUAEX                    // unauthorized (external authorization)
	FlagRLSE                    // rate limit service error
	FlagDC                      // downstream connection termination
	FlagURX                     // upstream retry limit exceeded
	FlagSI                      // stream idle timeout
	FlagIH                      // invalid Envoy request headers
	FlagDPE                     // downstream protocol error
	FlagUMSDR                   // upstream max stream duration reached
	FlagRFCF                    // response from cache filter
	FlagNFCF                    // no filter config found
	FlagDT                      // duration timeout
	FlagUPE                     // upstream protocol error
	FlagNC                      // no cluster found
	FlagOM                      // overload manager
	FlagDF                      // DNS resolution failed
	FlagDO                      // drop overload
	FlagDR                      // downstream remote reset

	numFlags = iota
)

var flagNames = [numFlags]string{
	"LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE",
	"DC", "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
}

// FlagName is the short name of flag number i (0-based bit index).
func FlagName(i int) string { return flagNames[i] }

// NumFlags is how many response flags there are.
const NumFlags = numFlags

// String is the flags as Envoy's %RESPONSE_FLAGS% prints them: short
// names joined by ",", or "-" for none.
func (f Flags) String() string {
	if f == 0 {
		return "-"
	}
	var b strings.Builder
	for i := 0; i < numFlags; i++ {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(flagNames[i])
		}
	}
	return b.String()
}

// Has reports whether every flag of g is set.
func (f Flags) Has(g Flags) bool { return f&g == g }

// ResponseFlagsHeader carries the response flags on every answer the
// proxy made itself, and on upstream answers the request path marked
// (URX, DI). Envoy has no such header (it logs the flags); sluice sends it
// so a client or a test can see why without an access log.
const ResponseFlagsHeader = "X-Sluice-Response-Flags"

// RequestInfo is what the request path learned about one request, after
// Envoy's StreamInfo: the response flags, the route and cluster, how many
// attempts were made and the last upstream host, the byte counts and the
// details. It lives with the request's Stream; the access log
// (pkg/proxy/accesslog) and the standard metrics (pkg/proxy/istiometrics)
// read it when the request completes.
type RequestInfo struct {
	// Start is when the request started (Envoy's start time).
	Start time.Time
	// BytesReceived is the request body bytes read from the client;
	// BytesSent the response body bytes written to it.
	BytesReceived uint64
	BytesSent     uint64
	// Details is why the response is what it is (Envoy's
	// %RESPONSE_CODE_DETAILS%): "via_upstream" for an upstream's answer,
	// the proxy's one-line reason for its own answers.
	Details string
	// UpstreamLocal is the local address of the last attempt's upstream
	// connection (%UPSTREAM_LOCAL_ADDRESS%).
	UpstreamLocal netip.AddrPort
	// UpstreamLocalPrincipal and UpstreamPeerPrincipal are the first URI
	// SANs of the certificates of the last attempt's upstream TLS
	// connection: the one this proxy sent and the server's ("" for
	// plaintext or none). Worked out once per connection.
	UpstreamLocalPrincipal, UpstreamPeerPrincipal string

	Flags    Flags
	Route    string
	Cluster  string
	Upstream string
	Attempts int
	// Status is the status sent to the client (499 when the client left
	// before an answer).
	Status int

	// StatPrefix is the connection manager's, for its counters.
	StatPrefix string
	// EgressTracing: the chain's connection manager traces outbound
	// requests, so the route's decorator goes upstream and the answer
	// loses x-envoy-decorator-operation.
	EgressTracing bool
	// Upgrade is the protocol an allowed HTTP/1.1 upgrade asks for; ""
	// for ordinary requests.
	Upgrade string

	// PeerMetadata is the other sidecar's x-envoy-peer-metadata (Istio's
	// metadata exchange): read from the request on a server sidecar, from
	// the upstream's response on a client sidecar ("" when none).
	PeerMetadata string
	// TakeUpstreamPeer: the router takes the metadata exchange headers
	// out of the upstream's response into PeerMetadata (a client
	// sidecar's or gateway's outbound request).
	TakeUpstreamPeer bool
}
