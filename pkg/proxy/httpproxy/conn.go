package httpproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// ConnInfo is one downstream connection as the connection manager sees
// it, made once when the connection is accepted (after the tls_inspector,
// the chain choice and any TLS handshake) and shared by all its requests:
// the filters' httpfilter.Conn, what its chain was chosen by, and the
// per-connection part of x-forwarded-client-cert.
type ConnInfo struct {
	Conn httpfilter.Conn
	// Match is what the connection's chain was chosen by; each request
	// chooses again in the runtime in force, so a pushed listener applies
	// to open connections too.
	Match dataplane.MatchInput
	// Chain is the chain chosen at accept, in Listener (the listener of the
	// runtime in force then): while a request's runtime has that same
	// listener (unchanged listeners are shared across pushes), the chain
	// holds without matching again.
	Chain    *dataplane.FilterChain
	Listener *dataplane.Listener
	// Local is the certificate the proxy presented (TLS it terminated).
	Local *x509.Certificate
	xfcc  xfccCache
}

// NewConnInfo fills the connection's httpfilter.Conn from c and its TLS
// state (nil for plaintext): addresses, SNI, and the verified peer's
// principal (a peer certificate is only ever present when it was
// verified: the chains' TLS configs ask for one only with something to
// verify it against).
func NewConnInfo(c net.Conn, state *tls.ConnectionState, local *x509.Certificate) *ConnInfo {
	ci := &ConnInfo{Local: local}
	ci.Conn.RemoteAddr = addrPort(c.RemoteAddr())
	ci.Conn.LocalAddr = addrPort(c.LocalAddr())
	if state != nil {
		ci.Conn.TLS = state
		ci.Conn.ServerName = state.ServerName
		if len(state.PeerCertificates) > 0 {
			ci.Conn.PeerPrincipal = Principal(state.PeerCertificates[0])
		}
	}
	return ci
}

// MTLS reports whether the connection presented a verified client
// certificate (Envoy's ssl()->peerCertificatePresented()).
func (ci *ConnInfo) MTLS() bool {
	return ci.Conn.TLS != nil && len(ci.Conn.TLS.PeerCertificates) > 0
}

// Principal is a certificate's identity as Envoy's RBAC reads
// authenticated.principal_name: its first URI SAN, else its first DNS
// SAN, else its subject.
func Principal(cert *x509.Certificate) string {
	if len(cert.URIs) > 0 {
		return cert.URIs[0].String()
	}
	if len(cert.DNSNames) > 0 {
		return cert.DNSNames[0]
	}
	return cert.Subject.String()
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

type connKey struct{}

// WithConn returns ctx carrying ci: the HTTP server's ConnContext for a
// connection the listener accepted.
func WithConn(ctx context.Context, ci *ConnInfo) context.Context {
	return context.WithValue(ctx, connKey{}, ci)
}

// connOf is the request's connection: the one the listener recorded, or
// (a handler served outside the proxy's listeners, as in tests) one made
// from the request.
func connOf(r *http.Request) *ConnInfo {
	if ci, ok := r.Context().Value(connKey{}).(*ConnInfo); ok {
		return ci
	}
	ci := &ConnInfo{}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		ci.Conn.RemoteAddr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		ci.Conn.LocalAddr = addrPort(la)
	}
	ci.Match.Transport = dataplane.TransportRawBuffer
	if r.TLS != nil {
		ci.Conn.TLS, ci.Conn.ServerName = r.TLS, r.TLS.ServerName
		if len(r.TLS.PeerCertificates) > 0 {
			ci.Conn.PeerPrincipal = Principal(r.TLS.PeerCertificates[0])
		}
		ci.Match = dataplane.MatchInput{ServerName: r.TLS.ServerName, Transport: dataplane.TransportTLS}
		if p := r.TLS.NegotiatedProtocol; p != "" {
			ci.Match.ALPN = []string{p}
		}
	}
	ci.Match.DestinationPort = uint32(ci.Conn.LocalAddr.Port())
	ci.Match.DestinationIP = ci.Conn.LocalAddr.Addr()
	return ci
}
