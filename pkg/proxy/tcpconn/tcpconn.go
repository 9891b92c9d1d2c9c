// Package tcpconn is opaque TCP to a cluster's host, as Envoy's tcp_proxy
// makes it: Dial checks the cluster's max_connections, picks a host and
// connects through the cluster's transport; Pipe copies bytes both ways
// with half-close and an idle timeout. TCP listeners (tcpproxy) and CONNECT
// tunnels (the router filter) both use it.
package tcpconn

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// DefaultIdleTimeout is tcp_proxy's idle_timeout default (Envoy: 1h), used
// for tunnels whose config names none (CONNECT terminated by a route).
const DefaultIdleTimeout = time.Hour

// Why a Dial failed before any byte moved: the HTTP connection manager
// answers a CONNECT with the matching status and response flag; a TCP
// listener just closes the connection.
var (
	// ErrOverflow: the cluster's max_connections is reached (UO).
	ErrOverflow = errors.New("max_connections reached (circuit breaker)")
	// ErrNoHealthyHost: the cluster has no host to pick (UH).
	ErrNoHealthyHost = errors.New("no healthy upstream")
	// ErrNoDestination: a passthrough cluster was given no destination.
	ErrNoDestination = errors.New("passthrough cluster: no destination to pass through to")
	// ErrConnectFailed wraps a failed connection to the picked host (UF).
	ErrConnectFailed = errors.New("upstream connect failed")
)

// Upstream is an open connection to a host of a cluster, holding one of
// the cluster's max_connections slots until Pipe (or Close) ends it.
type Upstream struct {
	net.Conn
	cl       *upstream.Cluster
	host     *upstream.Host
	released atomic.Bool
	// principals are the connection's TLS identities (zero: plaintext).
	principals upstream.Principals
}

// Principals are the TLS identities of the connection (zero for
// plaintext): the certificate this proxy sent and the server's.
func (u *Upstream) Principals() upstream.Principals { return u.principals }

// Host is the cluster host the connection went to (nil for passthrough).
func (u *Upstream) Host() *upstream.Host { return u.host }

// Dial opens a connection for one downstream connection, as Envoy's
// tcp_proxy does: cl's max_connections checked at once with no pending
// queue (upstream_cx_overflow), a host picked by the cluster's policy, the
// connection made through the cluster's transport (host overrides and TLS
// origination apply as for HTTP) within its connect timeout, and the
// outcome recorded for outlier detection. dest is the destination for
// passthrough (ORIGINAL_DST) clusters: a CONNECT's authority; raw TCP in
// local mode has none ("").
func Dial(ctx context.Context, cl *upstream.Cluster, dest string) (*Upstream, error) {
	if cl.Kind == upstream.OriginalDst && dest == "" {
		return nil, ErrNoDestination
	}
	// The slot is reserved before dialing so concurrent connections cannot
	// overshoot; Close releases it.
	if n := cl.Stats.CxActive.Add(1); cl.Limits.MaxConnections > 0 && uint64(n) > cl.Limits.MaxConnections {
		cl.Stats.CxActive.Add(-1)
		cl.Stats.CxOverflow.Add(1)
		return nil, ErrOverflow
	}
	var h *upstream.Host
	addr := dest
	if cl.Kind != upstream.OriginalDst {
		if h = cl.Pick(nil); h == nil {
			cl.Stats.CxActive.Add(-1)
			cl.Stats.CxNoneHealthy.Add(1)
			return nil, ErrNoHealthyHost
		}
		addr = h.Address
	}
	timeout := cl.ConnectTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, principals, err := cl.TransportFor(h).DialPrincipals(ctx, addr)
	if err != nil {
		cl.Stats.CxActive.Add(-1)
		cl.Stats.CxConnectFail.Add(1)
		if h != nil {
			h.Failures.Add(1)
			cl.Record(h, upstream.OutcomeConnectFailed, 0)
		}
		return nil, errors.Join(ErrConnectFailed, err)
	}
	cl.Stats.CxTotal.Add(1)
	if h != nil {
		h.Requests.Add(1)
		h.Active.Add(1)
		cl.Record(h, upstream.OutcomeResponse, 200)
	}
	return &Upstream{Conn: c, cl: cl, host: h, principals: principals}, nil
}

// Close closes the connection and releases its slot and the host's
// active count (once).
func (u *Upstream) Close() error {
	err := u.Conn.Close()
	if u.released.CompareAndSwap(false, true) {
		u.cl.Stats.CxActive.Add(-1)
		if u.host != nil {
			u.host.Active.Add(-1)
		}
	}
	return err
}

// Pipe copies bytes between down and u both ways (see pipe) and closes u
// when both directions are done or the connection was idle for idle. It
// returns the bytes read from down and the bytes written to it.
func (u *Upstream) Pipe(down net.Conn, idle time.Duration) (received, sent uint64) {
	defer u.Close()
	return pipe(down, u.Conn, idle)
}

// Buffered is conn reading first what br (a hijacked HTTP connection's
// reader) already holds: the bytes a client sent right after its CONNECT
// request. Half-close still reaches the TCP connection.
func Buffered(conn net.Conn, br *bufio.Reader) net.Conn {
	n := br.Buffered()
	if n == 0 {
		return conn
	}
	prefix, _ := br.Peek(n)
	return Prefixed(conn, append([]byte(nil), prefix...))
}

// Prefixed is conn reading prefix first (bytes already read from it, such
// as a peeked TLS ClientHello). Half-close still reaches conn.
func Prefixed(conn net.Conn, prefix []byte) net.Conn {
	return &prefixConn{Conn: conn, prefix: prefix}
}

// Join copies bytes between a and b both ways, as Pipe does between a
// connection and its upstream (see pipe); it returns the bytes copied
// from a to b and from b to a. The node proxy joins a captured
// connection to its tunnel with it.
func Join(a, b net.Conn, idle time.Duration) (aToB, bToA uint64) { return pipe(a, b, idle) }

// pipe copies both ways. When one side finishes sending, the other is
// half-closed so it sees EOF; the connection ends when both directions are
// done, or when no byte moved for idle.
// It returns the bytes copied from a to b and from b to a.
func pipe(a, b net.Conn, idle time.Duration) (aToB, bToA uint64) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn, count *uint64) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				w, werr := dst.Write(buf[:n])
				*count += uint64(w)
				if werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(b, a, &aToB)
	go cp(a, b, &bToA)
	if idle <= 0 {
		<-done
		<-done
		return aToB, bToA
	}
	ticker := time.NewTicker(min(idle/4+time.Millisecond, time.Minute))
	defer ticker.Stop()
	finished := 0
	for finished < 2 {
		select {
		case <-done:
			finished++
		case <-ticker.C:
			if time.Since(time.Unix(0, last.Load())) > idle {
				a.Close()
				b.Close()
			}
		}
	}
	return aToB, bToA
}

// prefixConn replays prefix before reading from the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the underlying TCP connection.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
