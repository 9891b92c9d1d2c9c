package h1parse

import (
	"net/http"
	"net/url"
	"strings"
)

// Request fills req (Method, RequestURI, URL, Proto, Header, Host,
// ContentLength, Close; not Body) from a request head as http.ReadRequest
// would, and reports false for a request net/http's parser is to judge:
// not HTTP/1.1, CONNECT (its target is an authority), a method that is not
// a token, a target url.ParseRequestURI refuses, more than one Host field
// (net/http refuses it). As http.ReadRequest, the Host field is moved from
// Header to Host (unless the target is absolute, whose host wins).
func (h *Head) Request(req *http.Request) bool {
	method, rest, ok1 := strings.Cut(h.Start, " ")
	uri, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" || method == http.MethodConnect ||
		method == "" || !token(method) || h.Hosts > 1 {
		return false
	}
	u, err := requestURL(uri)
	if err != nil {
		return false
	}
	req.Method, req.RequestURI, req.URL = method, uri, u
	req.Proto, req.ProtoMajor, req.ProtoMinor = proto, 1, 1
	req.Header = h.Header
	req.Host = u.Host
	if req.Host == "" {
		req.Host = h.Host
	}
	delete(req.Header, "Host")
	req.ContentLength = max(h.ContentLength, 0)
	req.Close = h.Close
	return true
}

// requestURL is url.ParseRequestURI(uri), without its work for the usual
// origin-form target: a path of characters that need no escaping (so
// Path is the target and RawPath empty) and an optional non-empty query.
func requestURL(uri string) (*url.URL, error) {
	path, query, hasQuery := strings.Cut(uri, "?")
	if len(path) == 0 || path[0] != '/' || !plainPath(path) ||
		hasQuery && (query == "" || !plainQuery(query)) {
		return url.ParseRequestURI(uri)
	}
	return &url.URL{Path: path, RawQuery: query}, nil
}

// plainPath: every byte is one url's escape leaves alone in a path
// (unreserved, and the sub-delims and ':' '@' '/' it does not escape).
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~$&+,/:;=@", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// plainQuery: visible ASCII (url keeps a query as it came, refusing only
// control characters).
func plainQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		if q[i] <= ' ' || q[i] > '~' {
			return false
		}
	}
	return true
}

func token(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			return false
		}
	}
	return true
}
