package httpfilter

import (
	"io"
	"net/http"
)

// LocalReply is an answer the proxy makes itself (Envoy's sendLocalReply):
// a plain-text body, the reason in X-Sluice-Reason, and the request's
// response flags (flag is added to them) in X-Sluice-Response-Flags.
func LocalReply(w http.ResponseWriter, info *RequestInfo, code int, flag Flags, reason, body string) {
	info.Flags |= flag
	info.Status = code
	info.Details = reason
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain")
	hdr.Set("X-Sluice-Reason", reason)
	if info.Flags != 0 {
		hdr.Set(ResponseFlagsHeader, info.Flags.String())
	}
	w.WriteHeader(code)
	io.WriteString(w, body+"\n") // counted by the connection manager's writer (BytesSent)
}

// FirstHeader is a header's first value; name must be canonical (no
// canonicalisation on the request path).
func FirstHeader(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
