package router

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	routes "github.com/sluice-mesh/sluice/pkg/proxy/router"
)

// hopHeaders apply to one connection only and are never forwarded (RFC
// 9110 section 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// Shared X-Forwarded-Proto values (len == cap, so an append copies them).
var protoHTTP, protoHTTPS = []string{"http"}, []string{"https"}

// outboundRequest builds the upstream request for r: same method, headers
// minus hop-by-hop ones, path rewritten by the route, sent to addr, bound
// to ctx (the attempt's), sending body (nil: r's), its URL written to u
// (the caller's allocation). The request is built on the stack and copied
// once by WithContext, so it costs one allocation, not two. extra is how
// many headers the caller may add to it (the header map is sized for
// them); pooled takes the map from outboundHeaders instead, for a request
// whose connection is done with it when RoundTrip returns.
func outboundRequest(ctx context.Context, r *http.Request, body io.ReadCloser, u *url.URL, addr string, rte *routes.Route, extra int, pooled bool) *http.Request {
	path := routes.RequestPath(r)
	newPath := rte.RewritePath(path)
	*u = url.URL{Scheme: "http", Host: addr, RawQuery: r.URL.RawQuery}
	if p, err := url.PathUnescape(newPath); err == nil {
		u.Path = p
		if p != newPath {
			u.RawPath = newPath
		}
	} else {
		u.Path = newPath
	}
	tmpl := http.Request{
		Method:        r.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        cloneRequestHeader(r.Header, extra+missing(r.Header, "X-Forwarded-Proto")+missing(r.Header, "X-Request-Id"), pooled),
		Body:          r.Body,
		ContentLength: r.ContentLength,
		Host:          r.Host,
	}
	if r.Body == http.NoBody || r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		tmpl.Body = nil
		tmpl.ContentLength = 0
	} else if body != nil {
		tmpl.Body = body
	}
	if a := rte.Action.HostRewrite; a != "" {
		tmpl.Host = a
	}
	if _, ok := tmpl.Header["X-Forwarded-Proto"]; !ok {
		if r.TLS != nil {
			tmpl.Header["X-Forwarded-Proto"] = protoHTTPS
		} else {
			tmpl.Header["X-Forwarded-Proto"] = protoHTTP
		}
	}
	if _, ok := tmpl.Header["X-Request-Id"]; !ok {
		tmpl.Header["X-Request-Id"] = []string{httpfilter.RequestID()}
	}
	return tmpl.WithContext(ctx)
}

// cloneRequestHeader copies h without hop-by-hop headers and without the
// headers the Connection header names. "TE: trailers" survives, as gRPC
// needs it. The copy has room for extra more headers: sized to what it
// will hold, a request of up to 8 headers gets Go's small map (2
// allocations) instead of a grown one (4 or 5).
func cloneRequestHeader(h http.Header, extra int, pooled bool) http.Header {
	named := connectionNamed(h["Connection"])
	var out http.Header
	if pooled {
		out = outboundHeaders.Get().(http.Header)
	} else {
		n := len(h) + extra
		for k := range h {
			if isHopHeader(k) || slices.Contains(named, k) {
				n--
			}
		}
		out = make(http.Header, n)
	}
	for k, v := range h {
		if !isHopHeader(k) && !slices.Contains(named, k) {
			out[k] = v
		}
	}
	if te := h["Te"]; len(te) > 0 && strings.Contains(strings.ToLower(strings.Join(te, ",")), "trailers") {
		out["Te"] = []string{"trailers"}
	}
	return out
}

// outboundHeaders are the header maps of requests sent on sluice's
// HTTP/1.1 connections (upstream.Admission.HeaderDoneAtReturn): attempt
// gives one back, emptied, once RoundTrip has returned. A map that held
// more than maxPooledHeader fields is left to the GC, as clear keeps a
// map's size.
var outboundHeaders = sync.Pool{New: func() any { return make(http.Header, 8) }}

const maxPooledHeader = 32

func putOutboundHeader(h http.Header) {
	if len(h) <= maxPooledHeader {
		clear(h)
		outboundHeaders.Put(h)
	}
}

// missing is 1 when h has no header k, else 0.
func missing(h http.Header, k string) int {
	if _, ok := h[k]; ok {
		return 0
	}
	return 1
}

// connectionNamed are the (canonical) header names a Connection header
// lists: they apply to that connection only.
func connectionNamed(conn []string) []string {
	var names []string
	for _, f := range conn {
		for name := range strings.SplitSeq(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				names = append(names, http.CanonicalHeaderKey(name))
			}
		}
	}
	return names
}

// isHopHeader reports whether k (canonical) is one of hopHeaders.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

func removeHopHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				delete(h, http.CanonicalHeaderKey(name))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

func copyResponseHeaders(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
	removeHopHeaders(dst)
}

func announceTrailers(h http.Header, trailer http.Header) {
	if len(trailer) == 0 {
		return
	}
	names := make([]string, 0, len(trailer))
	for k := range trailer {
		names = append(names, k)
	}
	h["Trailer"] = []string{strings.Join(names, ", ")}
}

// writeTrailers sends the upstream's trailers. They go under
// http.TrailerPrefix: an upstream need not announce its trailers (grpc-go
// does not), and Go's server sends only announced keys or prefixed ones.
func writeTrailers(h http.Header, trailer http.Header) {
	for k, v := range trailer {
		h[http.TrailerPrefix+k] = v
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody streams the response body; bodies of unknown length (streams,
// server-sent events, gRPC) are flushed as they arrive. The connection
// manager's writer counts the bytes (RequestInfo.BytesSent).
func copyBody(w http.ResponseWriter, resp *http.Response) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	flush := resp.ContentLength == -1
	rc := http.NewResponseController(w)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flush {
				rc.Flush()
			}
		}
		if err != nil {
			if err != io.EOF {
				// The upstream reset mid-body; the client sees a truncated
				// response, as it would through Envoy.
				panic(http.ErrAbortHandler)
			}
			return
		}
	}
}

func isConnectError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// rootCause is the innermost error text, e.g. "connection refused".
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
