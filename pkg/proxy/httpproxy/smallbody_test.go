package httpproxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/pkg/xdsgen"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// firstReads is an HTTP/1.1 upstream on a raw socket that records, for
// each request, what its first read returned and how many data segments
// it arrived in (TCP_INFO tcpi_data_segs_in: the proxy's sockets set
// TCP_NODELAY, so each write it makes is a segment of its own).
type firstReads struct {
	port  int
	mu    sync.Mutex
	first [][]byte
	segs  []uint32
}

func newFirstReads(t *testing.T) *firstReads {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	u := &firstReads{port: l.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go u.serve(c)
		}
	}()
	return u
}

func (u *firstReads) serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	raw, _ := c.(*net.TCPConn).SyscallConn()
	dataSegs := func() (n uint32) {
		raw.Control(func(fd uintptr) {
			if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				n = info.Data_segs_in
			}
		})
		return n
	}
	// A new connection has had no data segment before its first request
	// (which may have arrived before Accept returned).
	var before uint32
	for {
		// The first read of a request takes what has arrived; the rest of
		// the request is then read through a reader that starts with it.
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		u.mu.Lock()
		u.first = append(u.first, bytes.Clone(buf[:n]))
		u.mu.Unlock()
		req, err := http.ReadRequest(bufio.NewReader(io.MultiReader(bytes.NewReader(buf[:n]), c)))
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		after := dataSegs()
		u.mu.Lock()
		u.segs = append(u.segs, after-before)
		u.mu.Unlock()
		before = after
		answer := strconv.Itoa(len(body))
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(answer), answer)
	}
}

// A small request body goes upstream in the same write (one TCP segment) as the headers
// (net/http's Transport flushes the headers alone before a streamed
// body, golang/go#22088): under Istio's default retry policy (a kept,
// replayable body) and with retries off (the downstream's body), every
// request's first read upstream holds the whole body. A body over
// router.SmallBodyLimit is still streamed and arrives whole.
func TestSmallBodyOneWrite(t *testing.T) {
	up := newFirstReads(t)
	m := newMesh(t, service("web", &backend{port: up.port})+service("plain", &backend{port: up.port})+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: plain}
spec:
  hosts: [plain]
  http: [{retries: {attempts: 0}, route: [{destination: {host: plain}}]}]
`)
	body := bytes.Repeat([]byte("b"), 1024)
	for _, host := range []string{"web:8080", "plain:8080"} {
		up.mu.Lock()
		up.first, up.segs = nil, nil
		up.mu.Unlock()
		for range 20 {
			if a := m.do("POST", host, "/", body, nil); a.status != 200 || a.body != "1024" {
				t.Fatalf("%s: %d %q", host, a.status, a.body)
			}
		}
		up.mu.Lock()
		for i, f := range up.first {
			if !bytes.HasSuffix(f, body) || up.segs[i] != 1 {
				t.Errorf("%s: request %d: arrived in %d segments, the first read with %d bytes; want the headers and the 1 KiB body in one", host, i, up.segs[i], len(f))
			}
		}
		up.mu.Unlock()
	}
	big := bytes.Repeat([]byte("B"), 64<<10)
	if a := m.do("POST", "web:8080", "/", big, nil); a.status != 200 || a.body != strconv.Itoa(len(big)) {
		t.Fatalf("a 64 KiB body: %d %q", a.status, a.body)
	}
}

// A small body read whole is replayed to every attempt.
func TestSmallBodyRetried(t *testing.T) {
	web := newBackend(t, "web", failFirst(1, 503))
	m := newMesh(t, service("web", web)+vs(`  - retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: web}}]
`))
	body := bytes.Repeat([]byte("r"), 100)
	if a := m.do("POST", "web:8080", "/", body, nil); a.status != 200 {
		t.Fatalf("POST: %d %q", a.status, a.body)
	}
	got := web.seen()
	if len(got) != 2 || !bytes.Equal(got[0].body, body) || !bytes.Equal(got[1].body, body) {
		t.Fatalf("attempts saw bodies of %v bytes, want two of %d", lens(got), len(body))
	}
}

// A route's buffer limit below a small body's size still holds: the body
// is not kept, so it streams and is not retried.
func TestSmallBodyOverBufferLimit(t *testing.T) {
	web := newBackend(t, "web", failFirst(1, 503))
	m := newMeshEdited(t, service("web", web)+vs(`  - retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: web}}]
`), func(res *xdsgen.Resources) {
		for _, rc := range res.Routes {
			for _, vh := range rc.VirtualHosts {
				vh.PerRequestBufferLimitBytes = wrapperspb.UInt32(10)
			}
		}
	})
	if a := m.do("POST", "web:8080", "/", bytes.Repeat([]byte("r"), 100), nil); a.status != 503 || web.count.Load() != 1 {
		t.Fatalf("a body over the route's buffer limit must not be retried: %d after %d attempts", a.status, web.count.Load())
	}
	if got := web.seen(); len(got) != 1 || len(got[0].body) != 100 {
		t.Fatalf("the body arrived with %v bytes", lens(got))
	}
}

// A client that ends its side with less body than its Content-Length
// gets no answer (the stream is reset, DC), and nothing goes upstream.
func TestSmallBodyShort(t *testing.T) {
	web := newBackend(t, "web", nil)
	m := newMesh(t, service("web", web))
	c, err := net.Dial("tcp", strings.TrimPrefix(m.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: web:8080\r\nContent-Length: 100\r\n\r\n%s", bytes.Repeat([]byte("s"), 50))
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if len(got) != 0 || err != nil {
		t.Fatalf("a short body was answered %q (%v); want the connection closed with no answer", got, err)
	}
	if n := web.count.Load(); n != 0 {
		t.Fatalf("the upstream got %d requests", n)
	}
}
