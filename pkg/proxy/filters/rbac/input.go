package rbac

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
)

// Input is what the engine reads of one request (R set) or one
// connection (R nil: the network filter, where header and path matchers
// see no request, as Envoy's network RBAC evaluates with empty headers).
type Input struct {
	// R is the request; nil for a connection.
	R *http.Request
	// Path is the request's path without the query, after the connection
	// manager's normalization (what Envoy's RBAC reads from :path).
	Path string
	// Conn is the downstream connection; never nil.
	Conn *httpfilter.Conn
	// Metadata is the request's dynamic metadata (jwt_authn's payload).
	Metadata httpfilter.Metadata
	// XFFTrustedHops is the connection manager's xff_num_trusted_hops
	// (sluice's connection managers honour only 0).
	XFFTrustedHops uint32

	remote    netip.Addr
	remoteSet bool
}

// NewRequestInput is the input of an HTTP request on conn; the request's
// path must be the normalized one (the connection manager sets it).
func NewRequestInput(r *http.Request, conn *httpfilter.Conn, md httpfilter.Metadata) Input {
	return Input{R: r, Path: router.RequestPath(r), Conn: conn, Metadata: md}
}

// fullPath is :path, the path with its query.
func (in *Input) fullPath() string {
	if q := in.R.URL.RawQuery; q != "" {
		if uri := in.R.RequestURI; strings.HasPrefix(uri, in.Path) && len(uri) > len(in.Path) && uri[len(in.Path)] == '?' {
			return uri
		}
		return in.Path + "?" + q
	}
	return in.Path
}

// remoteAddr is Envoy's downstream remote address: with
// use_remote_address false (sluice's connection managers), the address in
// X-Forwarded-For that xff_num_trusted_hops designates (the last entry for
// 0), else the connection's peer (ConnectionManagerUtility::
// mutateRequestHeaders with the default XFF original IP detection, which
// calls Utility::getLastAddressFromXFF). A connection has no XFF.
func (in *Input) remoteAddr() netip.Addr {
	if in.remoteSet {
		return in.remote
	}
	in.remoteSet = true
	in.remote = in.Conn.RemoteAddr.Addr().Unmap()
	if in.R == nil {
		return in.remote
	}
	if a, ok := lastAddressFromXFF(in.R.Header["X-Forwarded-For"], in.XFFTrustedHops); ok {
		in.remote = a.Unmap()
	}
	return in.remote
}

// lastAddressFromXFF is Envoy's Utility::getLastAddressFromXFF over the
// X-Forwarded-For values (several header lines read as one list joined
// by ","): skip the last skip entries, take the one before them, trim
// spaces, parse it as an IP address (no port).
func lastAddressFromXFF(vals []string, skip uint32) (netip.Addr, bool) {
	if len(vals) == 0 {
		return netip.Addr{}, false
	}
	xff := vals[len(vals)-1]
	if len(vals) > 1 {
		xff = strings.Join(vals, ",")
	}
	for range skip {
		i := strings.LastIndexByte(xff, ',')
		if i < 0 {
			return netip.Addr{}, false
		}
		xff = xff[:i]
	}
	if i := strings.LastIndexByte(xff, ','); i >= 0 {
		xff = xff[i+1:] // "a," ends in an empty, invalid entry
	}
	// Envoy parses the entry with inet_pton: no IPv6 zone (%eth0).
	a, err := netip.ParseAddr(strings.TrimSpace(xff))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// ConnFromRequest is the downstream connection as far as the request
// tells it (its peer and local address, its TLS state), for a connection
// manager that did not set Stream.Conn.
func ConnFromRequest(r *http.Request) httpfilter.Conn {
	var c httpfilter.Conn
	c.RemoteAddr, _ = netip.ParseAddrPort(r.RemoteAddr)
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		c.LocalAddr = addrPort(a)
	}
	if r.TLS != nil {
		c.TLS, c.ServerName = r.TLS, r.TLS.ServerName
		c.PeerPrincipal = PeerPrincipal(r.TLS)
	}
	return c
}

// ConnFromNet is the downstream connection of a TCP connection (after
// any TLS handshake the proxy terminated).
func ConnFromNet(nc net.Conn) httpfilter.Conn {
	c := httpfilter.Conn{RemoteAddr: addrPort(nc.RemoteAddr()), LocalAddr: addrPort(nc.LocalAddr())}
	if tc, ok := nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.TLS, c.ServerName, c.PeerPrincipal = &st, st.ServerName, PeerPrincipal(&st)
	}
	return c
}

// PeerPrincipal is the verified peer certificate's identity as
// httpfilter.Conn defines it: its first URI SAN, else its first DNS SAN,
// else its subject; "" without a certificate.
func PeerPrincipal(st *tls.ConnectionState) string {
	if st == nil || len(st.PeerCertificates) == 0 {
		return ""
	}
	cert := st.PeerCertificates[0]
	switch {
	case len(cert.URIs) > 0:
		return cert.URIs[0].String()
	case len(cert.DNSNames) > 0:
		return cert.DNSNames[0]
	}
	return cert.Subject.String()
}

func addrPort(a net.Addr) netip.AddrPort {
	switch t := a.(type) {
	case *net.TCPAddr:
		return t.AddrPort()
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
