package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
)

// writeTestRequest writes req as an h1Conn does.
func writeTestRequest(req *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := writeRequestHead(w, req, false); err != nil {
		return nil, err
	}
	if err := writeRequestBody(w, req); err != nil {
		return nil, err
	}
	err := w.Flush()
	return buf.Bytes(), err
}

// What the writer accepts, net/http's server reads back as it was meant:
// method, target, Host, every header (trimmed, as net/http sends them),
// the body by Content-Length or chunked, and the trailers.
func FuzzH1RequestWrite(f *testing.F) {
	f.Add("GET", "/a/b?x=1", "svc.ns:80", "X-A", " v ", "", false)
	f.Add("POST", "/%2F?", "h", "Content-Type", "text/plain", "body", false)
	f.Add("PUT", "/p", "ünïcode.example", "X-B", "1", "chunked body", true)
	f.Add("BAD METHOD", "/", "h", "X-C\r\n", "v\r\nInjected: 1", "", false)
	f.Fuzz(func(t *testing.T, method, target, host, hk, hv, body string, chunked bool) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		req := &http.Request{Method: method, URL: u, Host: host, Header: http.Header{hk: {hv}}}
		if body != "" {
			req.Body = io.NopCloser(strings.NewReader(body))
			req.ContentLength = int64(len(body))
			if chunked {
				// A length with chunked: chunked wins (as in net/http).
				req.TransferEncoding = []string{"chunked"}
				req.Trailer = http.Header{"X-Trailer": {"t"}}
			}
		}
		wire, err := writeTestRequest(req)
		if err != nil {
			return // refused: nothing was sent
		}
		got, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(wire)))
		if err != nil {
			t.Fatalf("written request does not parse: %v\n%q", err, wire)
		}
		gotBody, err := io.ReadAll(got.Body)
		if err != nil {
			t.Fatalf("body: %v\n%q", err, wire)
		}
		wantMethod := method
		if wantMethod == "" {
			wantMethod = "GET"
		}
		if got.Method != wantMethod || got.RequestURI != u.RequestURI() || string(gotBody) != body {
			t.Fatalf("got %s %s body %q, want %s %s %q\n%q", got.Method, got.RequestURI, gotBody, wantMethod, u.RequestURI(), body, wire)
		}
		if wantHost, _ := requestHost(req); got.Host != wantHost {
			t.Fatalf("host %q, want %q", got.Host, wantHost)
		}
		ck := textproto.CanonicalMIMEHeaderKey(hk)
		if !h1SkipHeader(ck) && ck == hk && hk != "Connection" {
			if v := got.Header.Get(hk); v != textproto.TrimString(hv) {
				t.Fatalf("header %q: %q, want %q\n%q", hk, v, textproto.TrimString(hv), wire)
			}
		}
		if chunked && body != "" && got.Trailer.Get("X-Trailer") != "t" {
			t.Fatalf("trailer lost: %v\n%q", got.Trailer, wire)
		}
	})
}

// Header injection and bad targets are refused before anything is
// written, as net/http's Transport refuses them.
func TestH1WriteRefuses(t *testing.T) {
	for name, req := range map[string]*http.Request{
		"newline in value": {Method: "GET", URL: &url.URL{Path: "/"}, Host: "h", Header: http.Header{"X": {"a\r\nInjected: 1"}}},
		"bad name":         {Method: "GET", URL: &url.URL{Path: "/"}, Host: "h", Header: http.Header{"X Y": {"a"}}},
		"bad method":       {Method: "GE T", URL: &url.URL{Path: "/"}, Host: "h"},
		"bad host":         {Method: "GET", URL: &url.URL{Path: "/"}, Host: "h\r\nX: 1"},
		"relative target":  {Method: "GET", URL: &url.URL{Path: "0"}, Host: "h"},
	} {
		if _, err := writeTestRequest(req); err == nil {
			t.Errorf("%s: written, want refused", name)
		}
	}
}

// copyN copies as io.CopyN does: the same bytes, count and error for a
// source shorter than, as long as and longer than n, read in pieces of
// any size, through a writer smaller than n.
func TestCopyNAsIOCopyN(t *testing.T) {
	src := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16,000 bytes
	readers := map[string]func([]byte) io.Reader{
		"whole": func(b []byte) io.Reader { return bytes.NewReader(b) },
		"half":  func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
		"byte":  func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"eof":   func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
	}
	for name, mk := range readers {
		for _, have := range []int{0, 1, 5000, 9999, 10000, 16000} {
			const n = 10000
			var got, want bytes.Buffer
			w := bufio.NewWriterSize(&got, 4096)
			gn, gerr := copyN(w, mk(src[:have]), n)
			w.Flush()
			wn, werr := io.CopyN(&want, mk(src[:have]), n)
			if gn != wn || gerr != werr || !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("%s, %d bytes: copyN %d, %v, %d bytes; io.CopyN %d, %v, %d bytes", name, have, gn, gerr, got.Len(), wn, werr, want.Len())
			}
		}
	}
	// A failing writer stops the copy with its error.
	w := bufio.NewWriterSize(failWriter{}, 16)
	if _, err := copyN(w, bytes.NewReader(src), 100); err == nil {
		t.Error("copyN through a failing writer: no error")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
