package h1server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serve runs srv on a loopback listener until the test ends and returns
// its address.
func serve(t testing.TB, srv *Server, opts func(net.Conn) Options) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close(); srv.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			o := Options{}
			if opts != nil {
				o = opts(c)
			}
			go srv.ServeConn(c, o)
		}
	}()
	return lis.Addr().String()
}

// echo answers with what it read of the request, sorted, so two servers'
// answers compare byte for byte.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var keys []string
	for k, vv := range r.Header {
		keys = append(keys, k+"="+strings.Join(vv, "|"))
	}
	sort.Strings(keys)
	var trailers []string
	for k, vv := range r.Trailer {
		trailers = append(trailers, k+"="+strings.Join(vv, "|"))
	}
	sort.Strings(trailers)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s %s host=%q len=%d te=%v close=%v\nheaders=%v\ntrailers=%v\nbody=%q err=%v\n",
		r.Method, r.RequestURI, r.Proto, r.Host, r.ContentLength, r.TransferEncoding, r.Close, keys, trailers, body, err != nil)
}

// dial connects to addr for the test, every read and write within
// timeout; the connection is closed when the test ends.
func dial(t testing.TB, addr string, timeout time.Duration) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(timeout))
	return c
}

// roundTrip writes raw to addr and reads until the server closes or
// timeout passes.
func roundTrip(t testing.TB, addr, raw string, timeout time.Duration) string {
	t.Helper()
	c := dial(t, addr, timeout)
	defer c.Close()
	io.WriteString(c, raw)
	out, _ := io.ReadAll(c)
	return string(out)
}

func TestServeResponses(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short":
			io.WriteString(w, "hello")
		case "/long":
			w.Write(make([]byte, 5000))
		case "/flush":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		case "/length":
			w.Header().Set("Content-Length", "3")
			io.WriteString(w, "abc")
		case "/trailers":
			w.Header().Set("Trailer", "X-Declared")
			io.WriteString(w, "body")
			w.Header().Set("X-Declared", "d")
			w.Header().Set(http.TrailerPrefix+"X-Late", "l")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			if _, err := io.WriteString(w, "x"); err != http.ErrBodyNotAllowed {
				t.Errorf("write on 204: %v", err)
			}
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		case "/early":
			w.Header().Set("Link", "</a>")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "after")
		}
	})}
	addr := serve(t, srv, nil)
	cases := []struct {
		raw       string
		want      []string // substrings, in order
		forbidden []string
	}{
		{"GET /short HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []string{"HTTP/1.1 200 OK\r\n", "Content-Length: 5\r\n", "\r\nhello"}, []string{"chunked", "Content-Type"}},
		{"GET /long HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []string{"Transfer-Encoding: chunked\r\n", "\r\n1388\r\n", "\r\n0\r\n\r\n"}, []string{"Content-Length"}},
		{"GET /long HTTP/1.0\r\n\r\n", []string{"HTTP/1.0 200 OK\r\n"}, []string{"chunked", "Content-Length", "keep-alive"}},
		{"GET /short HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", []string{"HTTP/1.0 200 OK\r\n", "Connection: keep-alive\r\n", "Content-Length: 5\r\n"}, nil},
		{"GET /flush HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []string{"chunked", "\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n"}, nil},
		{"GET /length HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []string{"Content-Length: 3\r\n", "\r\nabc"}, []string{"chunked"}},
		{"HEAD /short HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []string{"HTTP/1.1 200 OK\r\n"}, []string{"hello", "chunked"}},
		{"GET /trailers HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []string{"Trailer: X-Declared\r\n", "4\r\nbody\r\n0\r\n", "X-Declared: d\r\n", "X-Late: l\r\n"}, nil},
		{"GET /nocontent HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []string{"HTTP/1.1 204 No Content\r\n"}, []string{"Content-Length", "chunked", "x"}},
		{"GET /close HTTP/1.1\r\nHost: a\r\n\r\n", []string{"Connection: close\r\n", "bye"}, nil},
		{"GET /early HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []string{"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n", "HTTP/1.1 200 OK\r\n", "after"}, nil},
		// Pipelined: both answered, in order.
		{"GET /short HTTP/1.1\r\nHost: a\r\n\r\nGET /length HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []string{"hello", "abc"}, nil},
	}
	for _, tc := range cases {
		got := roundTrip(t, addr, tc.raw, 5*time.Second)
		rest := got
		for _, w := range tc.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("%q: answer lacks %q (in order):\n%s", tc.raw, w, got)
				break
			}
			rest = rest[i+len(w):]
		}
		for _, f := range tc.forbidden {
			if strings.Contains(got, f) {
				t.Errorf("%q: answer has %q:\n%s", tc.raw, f, got)
			}
		}
		if !strings.Contains(got, "\r\nDate: ") {
			t.Errorf("%q: no Date:\n%s", tc.raw, got)
		}
	}
}

// TestServeRejectsAsNetHTTP sends bad requests to this server and to
// net/http's, which must give the same status.
func TestServeRejectsAsNetHTTP(t *testing.T) {
	ours := serve(t, &Server{Handler: http.HandlerFunc(echo), rstDelay: time.Millisecond}, nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	std := &http.Server{Handler: http.HandlerFunc(echo)}
	go std.Serve(lis)
	t.Cleanup(func() { std.Close() })
	for _, raw := range []string{
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"GARBAGE\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\n\r\n",
		"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
	} {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			// net/http puts its reason in the status line too; the code
			// is what must agree.
			a, b := statusLine(roundTrip(t, ours, raw, 2*time.Second)), statusLine(roundTrip(t, lis.Addr().String(), raw, 2*time.Second))
			if len(a) < 12 || len(b) < 12 || a[:12] != b[:12] {
				t.Errorf("%q: ours %q, net/http %q", raw, a, b)
			}
		})
	}
}

func statusLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

func TestServeHeaderLimit(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(echo)}, nil)
	big := "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n"
	if got := statusLine(roundTrip(t, addr, big, 5*time.Second)); got != "HTTP/1.1 431 Request Header Fields Too Large" {
		t.Errorf("70 KiB head: %q", got)
	}
	ok := "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: " + strings.Repeat("a", 50<<10) + "\r\n\r\n"
	if got := statusLine(roundTrip(t, addr, ok, 5*time.Second)); got != "HTTP/1.1 200 OK" {
		t.Errorf("50 KiB head: %q", got)
	}
}

func TestServeExpectContinue(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/read" {
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		}
	})}, nil)
	c := dial(t, addr, 5*time.Second)
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /read HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
	line, _ := br.ReadString('\n')
	if line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q", line)
	}
	br.ReadString('\n')
	io.WriteString(c, "abc")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "abc" {
		t.Errorf("body %q", b)
	}
	// A handler that does not read: no 100, and the connection ends (the
	// client has not sent the body).
	io.WriteString(c, "POST /skip HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !resp.Close {
		t.Errorf("status %d close %v", resp.StatusCode, resp.Close)
	}
}

func TestServeUnreadBody(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})}, nil)
	small := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	if got := roundTrip(t, addr, small, 5*time.Second); strings.Count(got, "HTTP/1.1 200 OK") != 2 {
		t.Errorf("small unread body: the next request was not served:\n%s", got)
	}
	big := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n" + strings.Repeat("x", 300<<10)
	if got := roundTrip(t, addr, big, 5*time.Second); !strings.Contains(got, "Connection: close") {
		t.Errorf("big unread body: the connection is kept:\n%s", got)
	}
}

// TestServeClientGone: a request still in its handler learns that its
// client went away (its context ends); a fast one never starts the watch.
func TestServeClientGone(t *testing.T) {
	cancelled := make(chan time.Duration, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case <-r.Context().Done():
			cancelled <- time.Since(start)
		case <-time.After(5 * time.Second):
			cancelled <- -1
		}
	})}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case d := <-cancelled:
		if d < 0 {
			t.Fatal("the request's context did not end when its client went away")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request was not served")
	}
}

// TestServePipelinedNotCancelled: the watch reading the next pipelined
// request's first byte does not cancel the current one, and the next
// request is served whole.
func TestServePipelinedNotCancelled(t *testing.T) {
	var n atomic.Int32
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			select {
			case <-r.Context().Done():
				http.Error(w, "cancelled", 500)
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		io.WriteString(w, r.URL.Path)
	})}, nil)
	c := dial(t, addr, 5*time.Second)
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(20 * time.Millisecond) // the watch is running
	io.WriteString(c, "GET /two HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"/one", "/two"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Errorf("got %d %q, want %q", resp.StatusCode, b, want)
		}
	}
}

// TestServeHeadersPerResponse: the connection reuses its header map, and
// a response still has only the fields its own handler set, however many
// the one before it had (past maxReusedHeader too).
func TestServeHeadersPerResponse(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		for i := range n {
			w.Header().Set("X-Field-"+strconv.Itoa(i), r.URL.Path)
		}
		io.WriteString(w, r.URL.Path)
	})}, nil)
	c := dial(t, addr, 5*time.Second)
	br := bufio.NewReader(c)
	for i, n := range []int{3, 0, 40, 1, 0} {
		path := "/r" + strconv.Itoa(i)
		fmt.Fprintf(c, "GET %s?n=%d HTTP/1.1\r\nHost: a\r\n\r\n", path, n)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		got := 0
		for k, v := range resp.Header {
			if strings.HasPrefix(k, "X-Field-") {
				got++
				if v[0] != path {
					t.Errorf("response %d: %s: %q, set by the handler of %q", i, k, v[0], path)
				}
			}
		}
		if got != n {
			t.Errorf("response %d: %d fields, want its own %d", i, got, n)
		}
	}
}

func TestServeHijack(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // past the watch
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		io.WriteString(conn, "echo:"+line)
	})}, nil)
	got := roundTrip(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nearly\n", 5*time.Second)
	if !strings.HasSuffix(got, "\r\n\r\necho:early\n") {
		t.Errorf("hijacked: %q", got)
	}
}

func TestServePanic(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			w.Write(make([]byte, 3000))
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "ok")
	})}, nil)
	got := roundTrip(t, addr, "GET /abort HTTP/1.1\r\nHost: a\r\n\r\n", 5*time.Second)
	if strings.Contains(got, "\r\n0\r\n\r\n") {
		t.Errorf("an aborted response was ended as complete: %q", got)
	}
	if got := roundTrip(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 5*time.Second); !strings.HasSuffix(got, "ok") {
		t.Errorf("after a panic: %q", got)
	}
}

func TestServeShutdown(t *testing.T) {
	release := make(chan struct{})
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	})}
	addr := serve(t, srv, nil)
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	idleBR := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(idleBR, nil); err != nil {
		t.Fatal(err)
	} else {
		io.ReadAll(resp.Body)
	}
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(20 * time.Millisecond)
	done := make(chan struct{})
	go func() { srv.Shutdown(context.Background()); close(done) }()
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := idleBR.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: %v, want closed", err)
	}
	close(release)
	busy.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Close {
		t.Error("the busy connection's last response does not say Connection: close")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("Shutdown did not return")
	}
}

func TestServeH2CPrefaceHandedOff(t *testing.T) {
	got := make(chan string, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(echo)}, func(net.Conn) Options {
		return Options{H2C: func(c net.Conn) {
			defer c.Close()
			b := make([]byte, len(http2Preface)+4)
			io.ReadFull(c, b)
			got <- string(b)
		}}
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, http2Preface[:5])
	time.Sleep(10 * time.Millisecond) // the preface split over two reads
	io.WriteString(c, http2Preface[5:]+"more")
	select {
	case s := <-got:
		if s != http2Preface+"more" {
			t.Errorf("handed off %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the preface was not handed off")
	}
	// "PRIX" is not the preface: HTTP/1.x refuses it.
	if got := roundTrip(t, addr, "PRIX / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 5*time.Second); !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Errorf("PRIX: %q", got)
	}
}

// TestServeWithNetHTTPClient runs net/http's client against the server:
// keep-alive reuse, bodies each way, trailers both ways.
func TestServeWithNetHTTPClient(t *testing.T) {
	var conns atomic.Int32
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		fmt.Fprintf(w, "%s:%d", r.Method, len(b))
		w.Header().Set("X-Sum", r.Trailer.Get("X-In"))
	})}, func(net.Conn) Options { conns.Add(1); return Options{} })
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for i := range 5 {
		req, _ := http.NewRequest("POST", "http://"+addr+"/", io.NopCloser(strings.NewReader(strings.Repeat("x", i*10000))))
		req.Trailer = http.Header{"X-In": {fmt.Sprint(i)}}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("POST:%d", i*10000); string(b) != want || resp.Trailer.Get("X-Sum") != fmt.Sprint(i) {
			t.Errorf("got %q trailer %q, want %q and %d", b, resp.Trailer.Get("X-Sum"), want, i)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 requests, want 1", n)
	}
}

// TestServeHeaderTimeout: a request head that stalls is dropped after
// ReadHeaderTimeout, the first one and one whose bytes came pipelined.
func TestServeHeaderTimeout(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 200 * time.Millisecond}, nil)
	for _, raw := range []string{
		"GET / HTT",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGE",
	} {
		start := time.Now()
		got := roundTrip(t, addr, raw, 5*time.Second)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%q: the stalled head was kept %v (answer %q)", raw, d, got)
		}
	}
}
