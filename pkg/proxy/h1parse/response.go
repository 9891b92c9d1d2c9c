package h1parse

import (
	"net/http"
	"strings"
)

// Response fills resp (Status, StatusCode, Proto, Header, ContentLength,
// Close; not Body or Request) from a response head as http.ReadResponse
// would for a request of the given method, and reports false for a
// response net/http's parser is to judge: not HTTP/1.1, a status code that
// is not three digits, a response to HEAD, a 1xx, 204 or 304, or one
// without a Content-Length (its body is chunked or runs to the close). As
// net/http, a Connection field listing "close" is removed (its token is
// Close).
func (h *Head) Response(resp *http.Response, method string) bool {
	proto, status, ok := strings.Cut(h.Start, " ")
	if !ok || proto != "HTTP/1.1" || method == http.MethodHead || h.ContentLength < 0 {
		return false
	}
	status = strings.TrimLeft(status, " ")
	code := statusCode(status)
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return false
	}
	resp.Status, resp.StatusCode = status, code
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = proto, 1, 1
	resp.Header = h.Header
	resp.ContentLength = h.ContentLength
	resp.Close = h.Close
	if h.Close {
		delete(resp.Header, "Connection")
	}
	return true
}

// statusCode is a status's three-digit code; -1 if it has none.
func statusCode(status string) int {
	code, _, _ := strings.Cut(status, " ")
	if len(code) != 3 {
		return -1
	}
	n := 0
	for i := 0; i < 3; i++ {
		if code[i] < '0' || code[i] > '9' {
			return -1
		}
		n = n*10 + int(code[i]-'0')
	}
	return n
}
