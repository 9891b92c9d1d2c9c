package downstream

import (
	"net"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/origdst"
)

// restore is the original_dst listener filter (dataplane/capture.go): the
// connection's local address restored to its original destination, read
// with one getsockopt. A connection already restored (handed off by a
// use_original_dst listener) is not read again; one without an original
// destination (no conntrack entry: not redirected) keeps its address, as
// Envoy's filter leaves it.
func (s *Server) restore(c net.Conn, l *dataplane.Listener) net.Conn {
	if _, ok := c.(*origdst.Conn); ok {
		return c
	}
	dst, err := origdst.Get(c)
	if err != nil {
		s.opts.Logger.Debug("original destination not restored", "listener", l.Name, "remote", c.RemoteAddr().String(), "err", err)
		return c
	}
	return origdst.Restore(c, dst)
}

// handOff gives a restored connection to the listener of its original
// destination (rt.ListenerFor), once; it reports whether it did. The
// receiving listener itself, or no listener, or one whose server is not
// up yet: the receiving listener's own chains serve it.
func (s *Server) handOff(c net.Conn, rt *dataplane.Runtime, l *dataplane.Listener) bool {
	rc, ok := c.(*origdst.Conn)
	if !ok || s.opts.Servers == nil {
		return false
	}
	target := rt.ListenerFor(rc.Destination())
	if target == nil || target == l || target.Name == l.Name {
		return false
	}
	srv := s.opts.Servers(target.Name)
	if srv == nil {
		return false
	}
	s.opts.Counters.HandedOff.Add(1)
	if !srv.HandOff(c) {
		c.Close()
	}
	return true
}
