// Package httpinspector is Envoy's envoy.filters.listener.http_inspector
// (source/extensions/filters/listener/http_inspector/http_inspector.cc): on
// a plaintext connection it reads the first bytes, without answering and
// without consuming them, and says whether they start an HTTP/1.x request
// line or the HTTP/2 prior-knowledge preface. Envoy then sets the
// connection's requested application protocols to "http/1.1", "http/1.0"
// or "h2c" for filter chain matching (Istio's sniffed inbound ports match
// their HTTP chains on them); anything else sets nothing. The returned
// connection replays the bytes read.
package httpinspector

import (
	"bytes"
	"errors"
	"net"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/tcpconn"
)

// Application protocols the inspector sets (Envoy's
// Http::Utility::AlpnNames).
const (
	HTTP10 = "http/1.0"
	HTTP11 = "http/1.1"
	H2C    = "h2c"
)

// MaxInspectSize is Envoy's Config::MAX_INSPECT_SIZE: the request line must
// end within this many bytes. A listener filter may not wait for more than
// it asked to read (active_tcp_socket.cc), so a longer first line is not
// HTTP.
const MaxInspectSize = 8192

// preface is the HTTP/2 client connection preface (RFC 9113 3.4).
const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// ErrClosed means the client closed (or the read failed) before the
// inspector could tell; Envoy closes such a connection.
var ErrClosed = errors.New("http_inspector: connection closed")

// ErrTimeout means the deadline passed before the inspector could tell
// (Envoy's listener_filters_timeout). Inspect returns the replaying
// connection with it, for continue_on_listener_filters_timeout.
var ErrTimeout = errors.New("http_inspector: listener filters timeout")

// Inspect reads conn's first bytes until they are known to be HTTP or not,
// or until deadline (zero: no deadline). It returns the application
// protocol found ("" when not HTTP) and a conn that replays what was read.
func Inspect(conn net.Conn, deadline time.Time) (string, net.Conn, error) {
	conn.SetReadDeadline(deadline)
	defer conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := conn.Read(buf[len(buf):min(cap(buf), MaxInspectSize)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			switch proto, st := Detect(buf); st {
			case Done:
				return proto, tcpconn.Prefixed(conn, buf), nil
			case NotHTTP:
				return "", tcpconn.Prefixed(conn, buf), nil
			}
			if len(buf) >= MaxInspectSize {
				return "", tcpconn.Prefixed(conn, buf), nil
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return "", tcpconn.Prefixed(conn, buf), ErrTimeout
			}
			return "", nil, ErrClosed
		}
	}
}

// State is what the bytes so far say.
type State int

// States of Detect (Envoy's ParseState).
const (
	// More bytes are needed.
	Continue State = iota
	// Done: the bytes start HTTP.
	Done
	// NotHTTP: they cannot (Envoy's ParseState::Error, done(false)).
	NotHTTP
)

// Detect is Envoy's parseHttpHeader over the bytes read so far: the h2
// preface (or a prefix of it: more needed) is "h2c"; otherwise the first
// line, up to the first CR or LF, must be a request line as http_parser
// reads it: a known method, a space, a request target without spaces or
// control characters, and either nothing (HTTP/0.9) or a space and
// HTTP/<digit>.<digit>. HTTP/1.1 is "http/1.1", any other version
// "http/1.0". A line not yet ended is checked as far as it goes, so a
// connection that cannot be HTTP is told at its first bytes.
func Detect(data []byte) (string, State) {
	if len(data) == 0 {
		return "", Continue
	}
	n := min(len(data), len(preface))
	if string(data[:n]) == preface[:n] {
		if len(data) < len(preface) {
			return "", Continue
		}
		return H2C, Done
	}
	if data[0] == '\r' || data[0] == '\n' {
		return "", NotHTTP
	}
	end := bytes.IndexAny(data, "\r\n")
	line := data
	if end >= 0 {
		line = data[:end]
	}
	is11, st := requestLine(line, end >= 0)
	switch {
	case st != Done:
		return "", st
	case is11:
		return HTTP11, Done
	}
	return HTTP10, Done
}

// requestLine checks line (complete: the line ended) as http_parser's
// request line states do, saying whether its version is HTTP/1.1.
func requestLine(line []byte, complete bool) (bool, State) {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		if !complete && methodPrefix(line) {
			return false, Continue
		}
		return false, NotHTTP
	}
	if !knownMethod(line[:sp]) {
		return false, NotHTTP
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	target := rest
	if sp >= 0 {
		target = rest[:sp]
	}
	if !validTarget(target, sp >= 0 || complete) {
		return false, NotHTTP
	}
	if sp < 0 {
		if complete {
			return false, Done // "GET /": HTTP/0.9
		}
		return false, Continue
	}
	return version(rest[sp+1:], complete)
}

// validTarget: a request target is at least one byte, with no control
// characters (http_parser's URL states refuse them); spaces end it.
func validTarget(t []byte, ended bool) bool {
	if ended && len(t) == 0 {
		return false
	}
	for _, c := range t {
		if c < 0x21 || c == 0x7f {
			return false
		}
	}
	return true
}

// version checks "HTTP/d.d" (or a prefix of it while the line goes on),
// saying whether it is HTTP/1.1.
func version(v []byte, complete bool) (bool, State) {
	const form = "HTTP/d.d"
	if len(v) > len(form) || complete && len(v) != len(form) {
		return false, NotHTTP
	}
	for i, c := range v {
		want := form[i]
		if want == 'd' && (c < '0' || c > '9') || want != 'd' && c != want {
			return false, NotHTTP
		}
	}
	if !complete {
		return false, Continue
	}
	return string(v) == "HTTP/1.1", Done
}

// methods are the methods http_parser knows (http_parser.h HTTP_METHOD_MAP).
var methods = []string{
	"DELETE", "GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "TRACE",
	"COPY", "LOCK", "MKCOL", "MOVE", "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK",
	"BIND", "REBIND", "UNBIND", "ACL", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE",
	"M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PATCH", "PURGE", "MKCALENDAR",
	"LINK", "UNLINK", "SOURCE",
}

func knownMethod(m []byte) bool {
	for _, k := range methods {
		if string(m) == k {
			return true
		}
	}
	return false
}

// methodPrefix: m could still become a known method.
func methodPrefix(m []byte) bool {
	for _, k := range methods {
		if len(m) <= len(k) && k[:len(m)] == string(m) {
			return true
		}
	}
	return false
}
