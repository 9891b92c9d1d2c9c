// Package tlsinspector is Envoy's envoy.filters.listener.tls_inspector
// (source/extensions/filters/listener/tls_inspector): it reads a
// connection's first bytes, without answering and without consuming them,
// and says whether they are a TLS ClientHello and, if so, which server
// name and application protocols it asks for. The filter chain is chosen
// from that (dataplane.Listener.Select); the returned connection replays
// the bytes read.
package tlsinspector

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/tcpconn"
)

// Result is what the inspector found.
type Result struct {
	// TLS is true when the connection starts with a ClientHello.
	TLS bool
	// ServerName is its SNI, lower case, without a trailing dot.
	ServerName string
	// ALPN are its application protocols, in the client's order.
	ALPN []string
}

// Transport is the detected transport protocol (dataplane.TransportTLS or
// dataplane.TransportRawBuffer).
func (r Result) Transport() string {
	if r.TLS {
		return dataplane.TransportTLS
	}
	return dataplane.TransportRawBuffer
}

// ErrClose means the connection must be closed: it timed out before its
// first bytes arrived (without continue_on_listener_filters_timeout), it
// closed first, or its ClientHello could not be parsed and the inspector
// is set to close on that.
var ErrClose = errors.New("tls_inspector: connection closed")

// errPeeked stops the handshake once the ClientHello has been read.
var errPeeked = errors.New("client hello read")

// recordTypeHandshake is the TLS record type a ClientHello arrives in.
const recordTypeHandshake = 0x16

// Inspect reads conn's ClientHello as cfg says (bounded by its timeout and
// maximum size) and returns what it found and a conn that replays the
// bytes read. Nothing is written to the client. Plain text (the first
// byte is not a TLS handshake record) is detected at once, as Envoy does.
func Inspect(conn net.Conn, cfg *dataplane.Inspector) (Result, net.Conn, error) {
	var deadline time.Time
	if cfg.Timeout > 0 {
		deadline = time.Now().Add(cfg.Timeout)
	}
	return InspectUntil(conn, cfg, deadline)
}

// InspectUntil is Inspect with the listener filters' deadline (zero: none)
// given: Envoy's listener_filters_timeout bounds all of a listener's
// filters together.
func InspectUntil(conn net.Conn, cfg *dataplane.Inspector, deadline time.Time) (Result, net.Conn, error) {
	var buf bytes.Buffer
	conn.SetReadDeadline(deadline)
	limit := cfg.MaxHelloSize
	if limit <= 0 {
		limit = 16 << 10
	}
	// The ClientHello is the first record(s): 5 bytes of record header
	// per record; the limit is on the handshake message, so allow the
	// headers of a few records on top.
	src := io.TeeReader(io.LimitReader(conn, int64(limit)+5*8), &buf)
	var res Result
	err := tls.Server(readOnlyConn{r: src}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			res.TLS = true
			res.ServerName = strings.ToLower(strings.TrimSuffix(h.ServerName, "."))
			res.ALPN = h.SupportedProtos
			return nil, errPeeked
		},
	}).Handshake()
	conn.SetReadDeadline(time.Time{})
	replay := tcpconn.Prefixed(conn, buf.Bytes())
	switch {
	case errors.Is(err, errPeeked):
		return res, replay, nil
	case buf.Len() > 0 && buf.Bytes()[0] != recordTypeHandshake:
		return Result{}, replay, nil // plain text
	case isTimeout(err) && buf.Len() == 0:
		if cfg.ContinueOnTimeout {
			return Result{}, replay, nil
		}
		return Result{}, nil, ErrClose
	case buf.Len() == 0:
		return Result{}, nil, ErrClose // closed before sending anything
	case cfg.CloseOnParseError || isTimeout(err):
		return Result{}, nil, ErrClose
	}
	// A handshake record that is not a ClientHello we can parse (or too
	// large): plain text for the chains, as Envoy's inspector by default.
	return Result{}, replay, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readOnlyConn lets crypto/tls read a ClientHello without answering.
type readOnlyConn struct{ r io.Reader }

func (c readOnlyConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (readOnlyConn) Write(p []byte) (int, error)        { return 0, io.ErrClosedPipe }
func (readOnlyConn) Close() error                       { return nil }
func (readOnlyConn) LocalAddr() net.Addr                { return nil }
func (readOnlyConn) RemoteAddr() net.Addr               { return nil }
func (readOnlyConn) SetDeadline(t time.Time) error      { return nil }
func (readOnlyConn) SetReadDeadline(t time.Time) error  { return nil }
func (readOnlyConn) SetWriteDeadline(t time.Time) error { return nil }
