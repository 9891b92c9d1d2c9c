package h1parse

import (
	"net/http"
	"testing"
)

// TestWhatIsTaken pins which heads the fast path takes (so the fuzz tests
// compare something) and which it leaves to net/http.
func TestWhatIsTaken(t *testing.T) {
	requests := map[string]bool{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n":                                           true,
		"GET /a/b?c=d&e HTTP/1.1\r\nhost: a\r\nuser-agent: x\r\n\r\n":                 true,
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc":                 true,
		"GET http://b/c HTTP/1.1\r\nHost: a\r\n\r\n":                                  true,  // absolute: url.ParseRequestURI
		"GET / HTTP/1.1\r\n\r\n":                                                      true,  // no Host: the server refuses it
		"GET / HTTP/1.1\r\nHost: a\r\n":                                               false, // not whole yet
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n":                                false,
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n":                             false, // obs-fold
		"GET / HTTP/1.1\nHost: a\n\n":                                                 false, // bare LF
		"GET / HTTP/1.0\r\nHost: a\r\n\r\n":                                           false,
		"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n":                                   false,
		"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n":             false,
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n": false,
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n":                     false,
		"GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n":                                  false,
		"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n":                                false,
		"G(T / HTTP/1.1\r\nHost: a\r\n\r\n":                                           false,
	}
	for in, want := range requests {
		h, ok := Parse([]byte(in))
		var req http.Request
		if got := ok && h.Request(&req); got != want {
			t.Errorf("request %q taken: %v, want %v", in, got, want)
		}
	}
	responses := map[string]bool{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc":               true,
		"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n": true,
		"HTTP/1.1 200 OK\r\n\r\n":                                       false, // to the close
		"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n":          false,
		"HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n":            false,
		"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n":                  false,
		"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n":                 false,
	}
	for in, want := range responses {
		h, ok := Parse([]byte(in))
		var resp http.Response
		if got := ok && h.Response(&resp, http.MethodGet); got != want {
			t.Errorf("response %q taken: %v, want %v", in, got, want)
		}
	}
}

// TestHead checks the parts a request head yields.
func TestHead(t *testing.T) {
	in := "GET /p?q HTTP/1.1\r\nhost:  a:1 \r\nX-A: 1\r\nx-a: 2\r\nConnection: Close\r\nPragma: no-cache\r\nContent-Length: 2\r\n\r\nhi"
	h, ok := Parse([]byte(in))
	if !ok {
		t.Fatal("not taken")
	}
	if h.Len != len(in)-2 || h.Host != "a:1" || h.Hosts != 1 || h.ContentLength != 2 || !h.Close {
		t.Fatalf("head %+v", h)
	}
	if got := h.Header["X-A"]; len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Fatalf("X-A = %q", got)
	}
	if h.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("Pragma: no-cache did not add Cache-Control: %v", h.Header)
	}
}
