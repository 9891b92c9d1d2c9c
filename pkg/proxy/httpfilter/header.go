package httpfilter

import (
	"net/http"
	"net/textproto"
	"strings"
)

// HeaderKey is how a header matcher's name is looked up per request,
// computed once at config time: Envoy's pseudo-headers (":method",
// ":authority", ":path", ":scheme"; "host" is HTTP/2's ":authority") as
// they are, any other name as its canonical MIME key, so no request
// canonicalizes it again.
func HeaderKey(name string) string {
	lower := strings.ToLower(name)
	switch lower {
	case ":method", ":authority", ":path", ":scheme":
		return lower
	case "host":
		return ":authority"
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// HeaderValue reads the header key (from HeaderKey) of r as Envoy's
// matchers see it: pseudo-headers from the request line (":path" is path,
// the caller's view of it: as received, or normalized), several values of
// one header joined with "," (Envoy's getAllOfHeaderAsString).
func HeaderValue(r *http.Request, key, path string) (string, bool) {
	switch key {
	case ":method":
		return r.Method, true
	case ":authority":
		return r.Host, true
	case ":path":
		return path, true
	case ":scheme":
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vals := r.Header[key]
	switch len(vals) {
	case 0:
		return "", false
	case 1:
		return vals[0], true
	}
	return strings.Join(vals, ","), true
}
