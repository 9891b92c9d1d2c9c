// Package origdst is Envoy's envoy.filters.listener.original_dst for
// iptables REDIRECT capture: the destination a redirected connection was
// sent to, read from the connection's conntrack entry (getsockopt
// SO_ORIGINAL_DST, IPv4; IP6T_SO_ORIGINAL_DST, IPv6; Envoy's
// Network::Utility::getOriginalDst), and the connection with its local
// address restored to it (Envoy's restoreLocalAddress): chain matching,
// RBAC's destination, ORIGINAL_DST clusters and the hand-off to the
// listener of that address all read the restored address.
package origdst

import (
	"errors"
	"net"
	"net/netip"
)

// ErrUnsupported: the platform has no SO_ORIGINAL_DST (only Linux has).
var ErrUnsupported = errors.New("SO_ORIGINAL_DST: not supported on this platform")

// Get returns the original destination of an accepted TCP connection:
// the address the client connected to before a REDIRECT (or, for a
// connection that was not redirected but is tracked, its own local
// address). One getsockopt.
func Get(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, errors.New("SO_ORIGINAL_DST: not a TCP connection")
	}
	la, _ := tc.LocalAddr().(*net.TCPAddr)
	if la == nil {
		return netip.AddrPort{}, errors.New("SO_ORIGINAL_DST: no local address")
	}
	v4 := la.AddrPort().Addr().Unmap().Is4()
	return get(tc, v4)
}

// Conn is an accepted connection whose local address was restored to
// its original destination.
type Conn struct {
	net.Conn
	dst   netip.AddrPort
	local *net.TCPAddr
	// Redirected is false when the original destination is the
	// connection's own local address (not redirected: the client
	// connected to the listener itself).
	Redirected bool
}

// Restore wraps c with its local address restored to dst.
func Restore(c net.Conn, dst netip.AddrPort) *Conn {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	rc := &Conn{Conn: c, dst: dst, local: net.TCPAddrFromAddrPort(dst), Redirected: true}
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok {
		ap := la.AddrPort()
		rc.Redirected = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) != dst
	}
	return rc
}

// LocalAddr is the restored original destination.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// Destination is the restored original destination.
func (c *Conn) Destination() netip.AddrPort { return c.dst }

// CloseWrite half-closes the connection.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// TCP returns the *net.TCPConn under c (restored or not), or nil.
func TCP(c net.Conn) *net.TCPConn {
	if rc, ok := c.(*Conn); ok {
		c = rc.Conn
	}
	tc, _ := c.(*net.TCPConn)
	return tc
}
