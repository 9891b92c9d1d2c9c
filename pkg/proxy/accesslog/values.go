package accesslog

import (
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// Entry is what one log line is filled from: Envoy's StreamInfo plus the
// request and response headers. The connection manager and the TCP proxy
// fill it on their stack when a request or connection completes.
type Entry struct {
	Info *httpfilter.RequestInfo
	// Conn is the downstream connection (addresses, SNI).
	Conn *httpfilter.Conn
	// Req is the request as the filters left it; nil for TCP.
	Req *http.Request
	// RespHeader is the response's headers; nil for TCP.
	RespHeader http.Header
	// End is when the request or connection completed.
	End time.Time
}

// startTimeLayout is Envoy's default %START_TIME% format
// (%Y-%m-%dT%H:%M:%E3SZ, UTC).
const startTimeLayout = "2006-01-02T15:04:05.000Z"

// appendValue appends seg's value for e to dst (unescaped) and reports
// whether there was one; absent values append nothing.
func appendValue(dst []byte, seg *segment, e *Entry) ([]byte, bool) {
	info := e.Info
	switch seg.op {
	case opStartTime:
		if info.Start.IsZero() {
			return dst, false
		}
		return info.Start.UTC().AppendFormat(dst, startTimeLayout), true
	case opReq:
		return appendReqHeader(dst, seg, e.Req)
	case opResp:
		if e.RespHeader == nil {
			return dst, false
		}
		v := firstHeader(e.RespHeader, seg.header)
		if v == "" && seg.alt != "" {
			v = firstHeader(e.RespHeader, seg.alt)
		}
		return appendString(dst, v)
	case opProtocol:
		if e.Req == nil {
			return dst, false
		}
		if e.Req.ProtoMajor == 2 {
			return append(dst, "HTTP/2"...), true
		}
		return append(dst, e.Req.Proto...), true
	case opResponseCode:
		return strconv.AppendInt(dst, int64(info.Status), 10), true
	case opResponseFlags:
		return appendFlags(dst, info.Flags), true
	case opResponseCodeDetails:
		return appendDetails(dst, info.Details)
	case opBytesReceived:
		return strconv.AppendUint(dst, atomic.LoadUint64(&info.BytesReceived), 10), true
	case opBytesSent:
		return strconv.AppendUint(dst, info.BytesSent, 10), true
	case opDuration:
		if info.Start.IsZero() {
			return dst, false
		}
		return strconv.AppendInt(dst, e.End.Sub(info.Start).Milliseconds(), 10), true
	case opAttemptCount:
		return strconv.AppendInt(dst, int64(info.Attempts), 10), true
	case opUpstreamHost:
		return appendString(dst, info.Upstream)
	case opUpstreamCluster:
		return appendString(dst, info.Cluster)
	case opRouteName:
		return appendString(dst, info.Route)
	case opUpstreamLocalAddress:
		return appendAddrPort(dst, info.UpstreamLocal, true)
	}
	return appendConnValue(dst, seg.op, e.Conn)
}

// appendConnValue appends the downstream connection's operators.
// CONNECTION_TERMINATION_DETAILS and UPSTREAM_TRANSPORT_FAILURE_REASON
// are never set by the proxy (Envoy sets them from its network RBAC
// filter and its upstream TLS sockets), so they log "-".
func appendConnValue(dst []byte, o op, c *httpfilter.Conn) ([]byte, bool) {
	if c == nil {
		return dst, false
	}
	switch o {
	case opDownstreamLocalAddress:
		return appendAddrPort(dst, c.LocalAddr, true)
	case opDownstreamLocalAddressNoPort:
		return appendAddrPort(dst, c.LocalAddr, false)
	case opDownstreamRemoteAddress:
		return appendAddrPort(dst, c.RemoteAddr, true)
	case opDownstreamRemoteAddressNoPort:
		return appendAddrPort(dst, c.RemoteAddr, false)
	case opRequestedServerName:
		return appendString(dst, c.ServerName)
	}
	return dst, false
}

func appendReqHeader(dst []byte, seg *segment, r *http.Request) ([]byte, bool) {
	if r == nil {
		return dst, false
	}
	dst, ok := appendReqOne(dst, seg.header, r)
	if !ok && seg.alt != "" {
		return appendReqOne(dst, seg.alt, r)
	}
	return dst, ok
}

// appendReqOne appends one request header; the pseudo headers read the
// request line (:path is the path as forwarded, after normalization).
func appendReqOne(dst []byte, h string, r *http.Request) ([]byte, bool) {
	switch h {
	case ":method":
		return appendString(dst, r.Method)
	case ":authority":
		return appendString(dst, r.Host)
	case ":scheme":
		if r.TLS != nil {
			return append(dst, "https"...), true
		}
		return append(dst, "http"...), true
	case ":path":
		if r.Method == http.MethodConnect || r.URL == nil {
			return dst, false
		}
		dst = append(dst, r.URL.EscapedPath()...)
		if r.URL.RawQuery != "" {
			dst = append(dst, '?')
			dst = append(dst, r.URL.RawQuery...)
		}
		return dst, true
	}
	if h[0] == ':' {
		return dst, false
	}
	return appendString(dst, firstHeader(r.Header, h))
}

func firstHeader(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func appendString(dst []byte, s string) ([]byte, bool) {
	if s == "" {
		return dst, false
	}
	return append(dst, s...), true
}

// appendDetails appends %RESPONSE_CODE_DETAILS%: Envoy's details hold no
// whitespace (StreamInfo::setResponseCodeDetails), so the proxy's one-line
// reasons have theirs replaced by '_' and the text line stays splittable.
func appendDetails(dst []byte, s string) ([]byte, bool) {
	if s == "" {
		return dst, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst, true
}

// appendFlags appends the flags as %RESPONSE_FLAGS% prints them (short
// names joined by ',', "-" for none) without building a string.
func appendFlags(dst []byte, f httpfilter.Flags) []byte {
	if f == 0 {
		return append(dst, '-')
	}
	first := true
	for i := 0; i < httpfilter.NumFlags; i++ {
		if f&(1<<i) == 0 {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, httpfilter.FlagName(i)...)
	}
	return dst
}

func appendAddrPort(dst []byte, ap netip.AddrPort, withPort bool) ([]byte, bool) {
	if !ap.IsValid() {
		return dst, false
	}
	if withPort {
		return ap.AppendTo(dst), true
	}
	return ap.Addr().AppendTo(dst), true
}
