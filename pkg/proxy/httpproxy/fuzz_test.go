package httpproxy_test

import (
	"bufio"
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects the proxy server's error log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// FuzzHTTP1RequestPath sends raw bytes to a real listener serving the
// proxy's handler (with Istio's default connection manager: BASE path
// normalization, websocket upgrades) in front of real backends. Whatever
// the bytes, the proxy must not panic, every answer must be a well-formed
// HTTP/1.x response, and every request reaching an app must carry a
// normalized path (no dot segment, no backslash).
func FuzzHTTP1RequestPath(f *testing.F) {
	for _, s := range []string{
		"GET /public/../admin HTTP/1.1\r\nHost: web:8080\r\n\r\n",
		"GET /public/%2e%2e/admin?x=1 HTTP/1.1\r\nHost: web\r\n\r\n",
		"GET http://web:8080/a/./b HTTP/1.1\r\nHost: web:8080\r\n\r\n",
		"POST /post HTTP/1.1\r\nHost: web:8080\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET /chat HTTP/1.1\r\nHost: web:8080\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: web:8080\r\nConnection: Upgrade\r\nUpgrade: spdy/3\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: web:8080\r\n\r\n",
		"GET /a%2Fb HTTP/1.1\r\nHost: nowhere\r\n\r\nGET / HTTP/1.1\r\nHost: web\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	var mu sync.Mutex
	var bad []string
	check := func(_ int64, w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." || strings.Contains(seg, "\\") {
				mu.Lock()
				bad = append(bad, r.RequestURI)
				mu.Unlock()
			}
		}
		io.WriteString(w, "ok\n")
	}
	web, public := newBackend(f, "web", check), newBackend(f, "public", check)
	m := newMesh(f, service("web", web)+service("public", public)+publicAdminVS)
	var errs lockedBuffer
	srv := httptest.NewUnstartedServer(m.handler)
	srv.Config.ErrorLog = log.New(&errs, "", 0)
	srv.Start()
	f.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	f.Fuzz(func(t *testing.T, raw []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write(raw)
		conn.(*net.TCPConn).CloseWrite()
		out, err := io.ReadAll(conn)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("no answer within 10s to %q", raw)
		}
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("HTTP/1.")) {
			t.Fatalf("answer to %q is not HTTP/1.x: %q", raw, out)
		}
		br := bufio.NewReader(bytes.NewReader(out))
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				break
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 100 || resp.StatusCode > 599 {
				t.Fatalf("status %d for %q", resp.StatusCode, raw)
			}
		}
		if s := errs.String(); strings.Contains(s, "panic") {
			t.Fatalf("the proxy panicked on %q:\n%s", raw, s)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("an app received un-normalized paths %q for %q", bad, raw)
		}
	})
}
