package h1parse

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a/b?c=d&e HTTP/1.1\r\nhost: a:80\r\nuser-agent: x\r\nACCEPT:  */* \t\r\n\r\n",
	"POST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
	"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab",
	"GET http://b/c HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /%41b!c HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n",
	"GET /? HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nX: 1\r\nx: 2\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n1234567",
}

// FuzzRequestAsNetHTTP: whatever request head Parse and Request take, they
// read as http.ReadRequest does the same bytes (every field of the
// request, and its body by its length).
func FuzzRequestAsNetHTTP(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		h, ok := Parse([]byte(data))
		var req http.Request
		if !ok || !h.Request(&req) {
			return
		}
		std, err := http.ReadRequest(bufio.NewReader(strings.NewReader(data)))
		if err != nil {
			t.Fatalf("taken here, refused by net/http (%v): %q", err, data)
		}
		if std.Body == http.NoBody {
			std.Body = nil
		}
		ours := &http.Request{
			Method: req.Method, RequestURI: req.RequestURI, URL: req.URL,
			Proto: req.Proto, ProtoMajor: req.ProtoMajor, ProtoMinor: req.ProtoMinor,
			Header: req.Header, Host: req.Host, ContentLength: req.ContentLength, Close: req.Close,
			Body: std.Body,
		}
		if !reflect.DeepEqual(ours, std) {
			t.Fatalf("read differently: %q\nours %+v\nnet/http %+v", data, ours, std)
		}
		sameBody(t, data, h, std.Body)
	})
}

// FuzzResponseAsNetHTTP: likewise for response heads and
// http.ReadResponse (the request's method is GET or HEAD).
func FuzzResponseAsNetHTTP(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nabc",
		"HTTP/1.1 404  Not Found\r\ncontent-length: 0\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200\r\nContent-Length: 10\r\n\r\nabc",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na",
		"HTTP/1.1 +12 OK\r\nContent-Length: 1\r\n\r\na",
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, data string, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		h, ok := Parse([]byte(data))
		var resp http.Response
		if !ok || !h.Response(&resp, method) {
			return
		}
		req := &http.Request{Method: method}
		std, err := http.ReadResponse(bufio.NewReader(strings.NewReader(data)), req)
		if err != nil {
			t.Fatalf("taken here, refused by net/http (%v): %q", err, data)
		}
		if std.Body == http.NoBody {
			std.Body = nil
		}
		resp.Request, resp.Body = req, std.Body
		if !reflect.DeepEqual(&resp, std) {
			t.Fatalf("read differently: %q\nours %+v\nnet/http %+v", data, &resp, std)
		}
		sameBody(t, data, h, std.Body)
	})
}

// sameBody checks that Body reads what follows the head as net/http's
// body does: the same bytes and the same end.
func sameBody(t *testing.T, data string, h Head, std io.Reader) {
	t.Helper()
	var want []byte
	var wantErr error
	if std != nil {
		want, wantErr = io.ReadAll(std)
	}
	got, gotErr := io.ReadAll(&Body{R: strings.NewReader(data[h.Len:]), N: max(h.ContentLength, 0)})
	if !bytes.Equal(got, want) || gotErr != wantErr {
		t.Fatalf("body read differently: %q\nours %q, %v\nnet/http %q, %v", data, got, gotErr, want, wantErr)
	}
}
