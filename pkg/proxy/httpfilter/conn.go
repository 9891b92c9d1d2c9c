package httpfilter

import (
	"crypto/tls"
	"net/netip"
)

// Conn is the downstream connection as filters see it: Envoy's downstream
// address provider and SSL connection info
// (envoy/stream_info/stream_info.h downstreamAddressProvider, Ssl::
// ConnectionInfo). The listener fills it once per connection, after any
// TLS handshake; filters only read it. Network filters (tcp) see the same.
type Conn struct {
	// RemoteAddr is the connection's peer (Envoy's direct remote
	// address: source.ip / ipBlocks); LocalAddr the address it arrived
	// at (destination.ip / destination.port).
	RemoteAddr, LocalAddr netip.AddrPort
	// OriginalDst is set when LocalAddr is a redirected connection's
	// original destination, restored by the listener's original_dst
	// filter (capture): ORIGINAL_DST clusters send to it.
	OriginalDst bool
	// ServerName is the TLS SNI the client sent (connection.sni); "" for
	// plaintext or no SNI.
	ServerName string
	// TLS is the handshake state when the proxy terminated TLS on this
	// connection; nil for plaintext.
	TLS *tls.ConnectionState
	// PeerPrincipal is the verified peer certificate's identity as
	// Envoy's RBAC authenticated.principal_name reads it: its first URI
	// SAN (spiffe://<trust domain>/ns/<ns>/sa/<sa> in the mesh), else its
	// first DNS SAN, else its subject. "" when no certificate was
	// presented (plaintext, or TLS without a client certificate).
	PeerPrincipal string
}

// Metadata is a request's dynamic metadata (Envoy's StreamInfo
// dynamicMetadata): per filter name, a JSON-like tree (map[string]any,
// []any, string, float64, bool, nil) one filter writes and later ones
// read: jwt_authn's payload_in_metadata, which RBAC's metadata matchers
// and the istio_authn attributes (request.auth.*) come from.
type Metadata map[string]map[string]any

// Set stores key under filter, making the maps as needed.
func (m *Metadata) Set(filter, key string, v any) {
	if *m == nil {
		*m = Metadata{}
	}
	f := (*m)[filter]
	if f == nil {
		f = map[string]any{}
		(*m)[filter] = f
	}
	f[key] = v
}
