package tcpproxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/tcpconn"
)

// errPeeked stops the handshake once the ClientHello has been read.
var errPeeked = errors.New("client hello read")

// peekServerName reads the TLS ClientHello at the start of conn and
// returns the server name it asks for, with a conn that replays the bytes
// read. Nothing is written to the client. A connection that does not start
// with a ClientHello yields "" and the replaying conn.
func peekServerName(conn net.Conn, timeout time.Duration) (string, net.Conn, error) {
	var buf bytes.Buffer
	conn.SetReadDeadline(time.Now().Add(timeout))
	var sni string
	err := tls.Server(readOnlyConn{r: io.TeeReader(conn, &buf)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni = h.ServerName
			return nil, errPeeked
		},
	}).Handshake()
	conn.SetReadDeadline(time.Time{})
	replay := tcpconn.Prefixed(conn, buf.Bytes())
	if err != nil && !errors.Is(err, errPeeked) && buf.Len() == 0 {
		return "", replay, err
	}
	return sni, replay, nil
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
