// Package hbone is Istio's HBONE tunnel: mutual TLS (SPIFFE workload
// certificates, ALPN "h2") to a destination's port 15008, then one HTTP/2
// CONNECT stream per proxied TCP connection, its :authority the destination
// "podIP:port", carrying the TCP bytes both ways with half-close.
//
// It follows istio/ztunnel: src/proxy/pool.rs (the client pool and its key),
// src/proxy/h2/client.rs and h2/server.rs (HTTP/2 settings, streams),
// src/proxy/inbound.rs (the CONNECT checks and answers), src/tls/workload.rs
// and src/tls/certificate.rs (ALPN h2, server identity verified by URI SAN,
// client certificates required and verified), src/config.rs (defaults).
//
// Why its own HTTP/2 connection on golang.org/x/net/http2's Framer and hpack
// rather than net/http's or x/net's Server and Transport: a TCP tunnel needs
// half-close both ways, and both of those end a stream when one side ends
// it. The server sends RST_STREAM(NO_ERROR) once a handler ends its response
// while the request is still open (x/net/http2 server.go, "the net/http
// package provides no mechanism for closing a ResponseWriter while still
// reading data"), and the Transport stops sending a request body once the
// response ended (transport.go, cs.peerClosed). So upstream EOF could not be
// END_STREAM while the client keeps sending. Framing, HPACK and frame
// validation are x/net's; this package keeps the stream states, flow
// control and settings, as grpc-go's transport does on the same Framer.
// Copies: a DATA payload is copied once from the Framer's read buffer into
// the stream's pooled 32 KiB chunks, then either out on Read or handed to a
// writer whole by WriteTo (io.Copy); a Write goes into the Framer's frame
// buffer and then to TLS.
//
// Goroutines: per connection, either side, one reading frames and one
// writing control frames and keepalive PINGs (so the reader never blocks
// on a write). A client stream has none of its own: its user reads and
// writes. A served stream has two: Handle then the stream-to-upstream copy,
// and the upstream-to-stream copy.
//
// Use: a Dialer per source network context (its DialContext binds the
// pod's netns or mark), Dial(ctx, Target{Addr: "podIP:15008", Authority:
// "podIP:port", PeerIDs: ..., SourceID: ...}) per proxied connection; a
// Server per destination workload serving its :15008 listener, Handle
// authorizing and dialling Request.Authority.
package hbone

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Defaults, from ztunnel's src/config.rs and src/proxy/h2/*.rs.
const (
	// DefaultIdleTimeout is ztunnel's POOL_UNUSED_RELEASE_TIMEOUT (5 minutes).
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultMaxStreamsPerConn is ztunnel's POOL_MAX_STREAMS_PER_CONNECTION:
	// the client opens at most this many streams on one connection.
	DefaultMaxStreamsPerConn = 100
	// DefaultServerMaxStreams is ztunnel's server max_concurrent_streams (200).
	DefaultServerMaxStreams = 200
	// DefaultHandshakeTimeout bounds TLS plus the HTTP/2 preface and settings.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultDrainTimeout bounds Server.Close's wait for open streams.
	DefaultDrainTimeout = 10 * time.Second

	// ztunnel's HTTP2_STREAM_WINDOW_SIZE, HTTP2_CONNECTION_WINDOW_SIZE and
	// HTTP2_FRAME_SIZE defaults.
	streamWindow = 4 << 20
	connWindow   = 16 << 20
	maxFrameSize = 1 << 20
	// ztunnel's max_header_list_size: 16 KiB client, 64 KiB server.
	clientMaxHeaderList = 16 << 10
	serverMaxHeaderList = 64 << 10
)

// Port is HBONE's port on every ambient workload.
const Port = 15008

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("hbone: server closed")

// StatusError is a non-200 answer to a CONNECT: what a Server's Handle
// returns to answer with Code, and what Dial returns when the peer did.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string {
	r := e.Reason
	if r == "" {
		r = http.StatusText(e.Code)
	}
	return fmt.Sprintf("hbone: CONNECT answered %d: %s", e.Code, r)
}

// Target is where Dial opens a stream.
type Target struct {
	Addr      string      // tunnel endpoint, "podIP:15008"
	Authority string      // CONNECT authority, "podIP:targetPort"
	PeerIDs   []string    // acceptable server SPIFFE IDs; the server's URI SAN must be one
	SourceID  string      // pool key part: the identity of Certificate()
	Header    http.Header // extra request headers (baggage, forwarded, traceparent)
}

// Request is one CONNECT as the server's Handle sees it.
type Request struct {
	Authority  string
	PeerID     string // the client's verified SPIFFE ID
	RemoteAddr net.Addr
	LocalAddr  net.Addr
	Header     http.Header
}
