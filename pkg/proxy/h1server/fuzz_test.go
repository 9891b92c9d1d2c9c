package h1server

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzServeAsNetHTTP sends the same bytes to this server and to net/http's,
// both serving echo (which answers with the request as its handler saw it):
// the first answer's status code, and for a served request the whole echo,
// must agree. So whatever the server accepts, it reads as net/http does
// (method, target, Host, headers, body by length or chunked, trailers),
// and what net/http refuses it refuses.
func FuzzServeAsNetHTTP(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHOST: a\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"POST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		"GET http://a/b HTTP/1.1\r\nHost: c\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
	} {
		f.Add(s)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	std := &http.Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: time.Second}
	go std.Serve(lis)
	f.Cleanup(func() { std.Close() })
	ours := serve(f, &Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: time.Second, rstDelay: time.Millisecond}, nil)
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 4<<10 || strings.HasPrefix(raw, "PRI") {
			return // limits differ by design (60 KiB); h2c is handed off
		}
		a := firstAnswer(t, ours, raw)
		b := firstAnswer(t, lis.Addr().String(), raw)
		if a != b {
			t.Errorf("%q:\nours:     %q\nnet/http: %q", raw, a, b)
		}
	})
}

// firstAnswer is the first response's status code, and for a 200 its body.
func firstAnswer(t *testing.T, addr, raw string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	io.WriteString(c, raw)
	c.(*net.TCPConn).CloseWrite()
	out, _ := io.ReadAll(c)
	s := string(out)
	if len(s) < 12 || !strings.HasPrefix(s, "HTTP/1.") {
		return ""
	}
	code := s[9:12]
	if code != "200" {
		return code
	}
	_, body, _ := strings.Cut(s, "\r\n\r\n")
	if i := strings.Index(body, "\nHTTP/1."); i >= 0 {
		body = body[:i]
	}
	return code + " " + body
}
