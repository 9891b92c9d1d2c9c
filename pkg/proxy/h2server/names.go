package h2server

import (
	"net/textproto"
	"strconv"
	"strings"
)

// commonHeaders are header names whose canonical and lower-case forms
// are kept ready, so the usual requests and responses convert none
// (net/http's commonLowerHeader and commonCanonHeader, with the fields a
// mesh adds).
var commonHeaders = []string{
	"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
	"Access-Control-Allow-Credentials", "Access-Control-Allow-Headers", "Access-Control-Allow-Methods",
	"Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Access-Control-Max-Age",
	"Access-Control-Request-Headers", "Access-Control-Request-Method", "Age", "Allow", "Authorization",
	"Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
	"Content-Location", "Content-Range", "Content-Type", "Cookie", "Date", "Etag", "Expect", "Expires",
	"From", "Host", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since",
	"Last-Modified", "Link", "Location", "Max-Forwards", "Origin", "Proxy-Authenticate",
	"Proxy-Authorization", "Range", "Referer", "Refresh", "Retry-After", "Server", "Set-Cookie",
	"Strict-Transport-Security", "Te", "Trailer", "Transfer-Encoding", "User-Agent", "Vary", "Via",
	"Www-Authenticate", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id",
	"X-Envoy-Upstream-Service-Time", "X-Envoy-Decorator-Operation", "X-Envoy-Attempt-Count",
	"X-Envoy-Expected-Rq-Timeout-Ms", "X-Envoy-Peer-Metadata", "X-Envoy-Peer-Metadata-Id",
	"X-Forwarded-Client-Cert", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled",
	"Traceparent", "Tracestate", "Grpc-Status", "Grpc-Message", "Grpc-Encoding", "Grpc-Accept-Encoding",
	"Grpc-Timeout", "Grpc-Status-Details-Bin", "X-Content-Type-Options", "X-Sluice-Response-Flags",
	"Baggage", "Priority",
}

var (
	commonCanon = map[string]string{} // lower-case -> canonical
	commonLower = map[string]string{} // canonical -> lower-case
	statusCodes [600]string
)

func init() {
	for _, k := range commonHeaders {
		l := strings.ToLower(k)
		commonCanon[l], commonLower[k] = k, l
	}
	for i := 100; i < len(statusCodes); i++ {
		statusCodes[i] = strconv.Itoa(i)
	}
}

// maxCachedNames bounds a connection's own caches of names.
const maxCachedNames = 64

// canonical is the canonical form of a received (lower-case) header
// name (serve goroutine only).
func (c *conn) canonical(v string) string {
	if k, ok := commonCanon[v]; ok {
		return k
	}
	if k, ok := c.canon[v]; ok {
		return k
	}
	k := textproto.CanonicalMIMEHeaderKey(v)
	if c.canon == nil {
		c.canon = make(map[string]string)
	}
	if len(c.canon) < maxCachedNames {
		c.canon[v] = k
	}
	return k
}

// lower is the wire form of a header name to send (under wmu); false:
// not ASCII.
func (c *conn) lower(k string) (string, bool) {
	if l, ok := commonLower[k]; ok {
		return l, true
	}
	if l, ok := c.lowered[k]; ok {
		return l, true
	}
	for i := 0; i < len(k); i++ {
		if k[i] >= 0x80 {
			return "", false
		}
	}
	l := strings.ToLower(k)
	if c.lowered == nil {
		c.lowered = make(map[string]string)
	}
	if len(c.lowered) < maxCachedNames {
		c.lowered[k] = l
	}
	return l, true
}

// statusText is a status code's decimal form.
func statusText(code int) string {
	if code >= 100 && code < len(statusCodes) {
		return statusCodes[code]
	}
	return strconv.Itoa(code)
}
