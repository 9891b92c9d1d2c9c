package echo

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// start runs a server on a free loopback port for the test's lifetime and
// returns its base URL.
func start(t *testing.T, opts Options) string {
	t.Helper()
	opts.Address = "127.0.0.1:0"
	s := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := s.Start(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := s.Wait(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return "http://" + addr
}

var reviews = Options{Service: "reviews", Version: "v1", Namespace: "bookinfo", Pod: "reviews-v1-0"}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func decode(t *testing.T, resp *http.Response, body []byte) Response {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json; body %q", ct, body)
	}
	var r Response
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	return r
}

func checkIdentity(t *testing.T, resp *http.Response, want Options) {
	t.Helper()
	for name, v := range map[string]string{
		"X-Echo-Service": want.Service,
		"X-Echo-Version": want.Version,
		"X-Echo-Pod":     want.Pod,
	} {
		if got := resp.Header.Get(name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
}

func TestEchoRequest(t *testing.T) {
	base := start(t, reviews)
	req := newRequest(t, "POST", base+"/a/b?x=1&y=%2F", strings.NewReader(strings.Repeat("z", 1000)))
	req.Host = "reviews:9080"
	req.Header.Add("end-user", "jason")
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	resp, body := do(t, nil, req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	checkIdentity(t, resp, reviews)
	got := decode(t, resp, body)
	if got.Service != "reviews" || got.Version != "v1" || got.Namespace != "bookinfo" || got.Pod != "reviews-v1-0" {
		t.Errorf("identity = %+v", got)
	}
	r := got.Request
	if r.Method != "POST" || r.Path != "/a/b?x=1&y=%2F" || r.Host != "reviews:9080" || r.Proto != "HTTP/1.1" || r.BodyBytes != 1000 {
		t.Errorf("request = %+v", r)
	}
	if v := r.Headers["End-User"]; len(v) != 1 || v[0] != "jason" {
		t.Errorf("End-User = %q", v)
	}
	if v := r.Headers["X-Multi"]; len(v) != 2 || v[0] != "one" || v[1] != "two" {
		t.Errorf("X-Multi = %q", v)
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err != nil || host != "127.0.0.1" {
		t.Errorf("remote_addr = %q", r.RemoteAddr)
	}

	// The exact JSON names are a contract.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"service", "version", "namespace", "pod", "request"} {
		if _, ok := top[k]; !ok {
			t.Errorf("missing top-level key %q in %s", k, body)
		}
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(top["request"], &inner); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"method", "path", "host", "proto", "headers", "remote_addr", "body_bytes"} {
		if _, ok := inner[k]; !ok {
			t.Errorf("missing request key %q in %s", k, body)
		}
	}
}

func TestDefaults(t *testing.T) {
	s := New(Options{Service: "ratings", Version: "v2"})
	if o := s.Options(); o.Pod != "ratings-v2" || o.Namespace != "default" || o.Address != DefaultAddress {
		t.Errorf("defaults = %+v", o)
	}
	if o := New(Options{Service: "ratings"}).Options(); o.Pod != "ratings" {
		t.Errorf("pod without version = %q", o.Pod)
	}
}

func TestAnyPathAndMethodEchoes(t *testing.T) {
	base := start(t, reviews)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/healthz"}, {"PUT", "/"}, {"DELETE", "/x/y/z"}, {"PATCH", "/p"}, {"OPTIONS", "/o"},
	} {
		resp, body := do(t, nil, newRequest(t, tc.method, base+tc.path, nil))
		got := decode(t, resp, body)
		if resp.StatusCode != 200 || got.Request.Method != tc.method || got.Request.Path != tc.path {
			t.Errorf("%s %s: status %d, echoed %s %s", tc.method, tc.path, resp.StatusCode, got.Request.Method, got.Request.Path)
		}
	}
	// HEAD gets the headers of the JSON answer and no body.
	resp, body := do(t, nil, newRequest(t, "HEAD", base+"/h", nil))
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("X-Echo-Pod") != "reviews-v1-0" {
		t.Errorf("HEAD: status %d, body %q, headers %v", resp.StatusCode, body, resp.Header)
	}
}

func TestStatus(t *testing.T) {
	base := start(t, reviews)
	t.Run("query", func(t *testing.T) {
		resp, body := do(t, nil, newRequest(t, "GET", base+"/?status=503", nil))
		if resp.StatusCode != 503 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		checkIdentity(t, resp, reviews)
		if got := decode(t, resp, body); got.Request.Path != "/?status=503" {
			t.Errorf("path = %q", got.Request.Path)
		}
	})
	t.Run("header", func(t *testing.T) {
		req := newRequest(t, "GET", base+"/", nil)
		req.Header.Set("X-Echo-Status", "418")
		resp, body := do(t, nil, req)
		if resp.StatusCode != 418 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		decode(t, resp, body)
	})
	t.Run("query wins", func(t *testing.T) {
		req := newRequest(t, "GET", base+"/?status=201", nil)
		req.Header.Set("X-Echo-Status", "500")
		if resp, _ := do(t, nil, req); resp.StatusCode != 201 {
			t.Fatalf("status %d, want 201", resp.StatusCode)
		}
	})
	t.Run("informational", func(t *testing.T) {
		// Sent as an interim response; the final answer is the usual 200.
		resp, body := do(t, nil, newRequest(t, "GET", base+"/?status=103", nil))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200 after the interim 103", resp.StatusCode)
		}
		decode(t, resp, body)
	})
	t.Run("no body statuses", func(t *testing.T) {
		for _, code := range []int{204, 304} {
			resp, body := do(t, nil, newRequest(t, "GET", base+"/?status="+strconv.Itoa(code), nil))
			if resp.StatusCode != code || len(body) != 0 {
				t.Errorf("status %d, body %q; want %d with no body", resp.StatusCode, body, code)
			}
			checkIdentity(t, resp, reviews)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		for _, v := range []string{"abc", "99", "600", "-1", "", "101"} {
			resp, body := do(t, nil, newRequest(t, "GET", base+"/?status="+v, nil))
			if resp.StatusCode != 400 {
				t.Errorf("status=%q: got %d, want 400", v, resp.StatusCode)
			}
			if s := string(body); !strings.Contains(s, "status") || strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
				t.Errorf("status=%q: reason %q is not one line naming the control", v, s)
			}
			checkIdentity(t, resp, reviews)
		}
		req := newRequest(t, "GET", base+"/", nil)
		req.Header.Set("X-Echo-Status", "7000")
		if resp, _ := do(t, nil, req); resp.StatusCode != 400 {
			t.Errorf("header 7000: got %d, want 400", resp.StatusCode)
		}
	})
	t.Run("other invalid controls", func(t *testing.T) {
		for _, q := range []string{"delay=soon", "delay=-1s", "size=-5", "size=lots"} {
			if resp, _ := do(t, nil, newRequest(t, "GET", base+"/?"+q, nil)); resp.StatusCode != 400 {
				t.Errorf("%s: got %d, want 400", q, resp.StatusCode)
			}
		}
	})
}

func TestDelay(t *testing.T) {
	base := start(t, reviews)
	for _, tc := range []struct {
		name  string
		setup func(*http.Request)
		url   string
	}{
		{"query", func(*http.Request) {}, base + "/?delay=200ms"},
		{"header", func(r *http.Request) { r.Header.Set("X-Echo-Delay", "200ms") }, base + "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := newRequest(t, "GET", tc.url, nil)
			tc.setup(req)
			begin := time.Now()
			resp, body := do(t, nil, req)
			if elapsed := time.Since(begin); elapsed < 200*time.Millisecond {
				t.Errorf("answered after %v, want at least 200ms", elapsed)
			}
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
			decode(t, resp, body)
		})
	}
}

// TestDelayClientGone checks that a delayed handler stops waiting when the
// client cancels, rather than sitting out the whole delay.
func TestDelayClientGone(t *testing.T) {
	s := New(reviews)
	returned := make(chan struct{}, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Handler().ServeHTTP(w, r)
		returned <- struct{}{}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+ln.Addr().String()+"/?delay=1m", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	begin := time.Now()
	_, err = http.DefaultClient.Do(req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if elapsed := time.Since(begin); elapsed >= time.Minute {
		t.Fatalf("client returned after %v", elapsed)
	}
	select {
	case <-returned:
	case <-time.After(30 * time.Second):
		t.Fatal("handler still waiting out its delay after the client went away")
	}
}

func TestSize(t *testing.T) {
	base := start(t, reviews)
	for _, n := range []int{0, 1, 1024, 100_000} {
		resp, body := do(t, nil, newRequest(t, "GET", base+"/?size="+strconv.Itoa(n), nil))
		if resp.StatusCode != 200 || len(body) != n || strings.Trim(string(body), "x") != "" {
			t.Errorf("size=%d: status %d, %d bytes", n, resp.StatusCode, len(body))
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
			t.Errorf("size=%d: Content-Type %q", n, ct)
		}
		if resp.ContentLength != int64(n) {
			t.Errorf("size=%d: Content-Length %d", n, resp.ContentLength)
		}
		checkIdentity(t, resp, reviews)
	}
	req := newRequest(t, "GET", base+"/?status=202", nil)
	req.Header.Set("X-Echo-Size", "1024")
	resp, body := do(t, nil, req)
	if resp.StatusCode != 202 || len(body) != 1024 {
		t.Errorf("header size with status: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestSetHeader(t *testing.T) {
	base := start(t, reviews)
	req := newRequest(t, "GET", base+"/", nil)
	req.Header.Set("X-Echo-Set-Header", " X-Foo : bar , x-multi:1,X-Multi: 2,malformed, :novalue, x-echo-pod: override")
	resp, body := do(t, nil, req)
	decode(t, resp, body)
	if got := resp.Header.Get("X-Foo"); got != "bar" {
		t.Errorf("X-Foo = %q", got)
	}
	if got := resp.Header.Values("X-Multi"); len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Errorf("X-Multi = %q", got)
	}
	if got := resp.Header.Values("X-Echo-Pod"); len(got) != 1 || got[0] != "override" {
		t.Errorf("X-Echo-Pod = %q", got)
	}
	if got := resp.Header.Get("X-Echo-Service"); got != "reviews" {
		t.Errorf("X-Echo-Service = %q", got)
	}
}

func TestH2CPriorKnowledge(t *testing.T) {
	base := start(t, reviews)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &p}}
	t.Cleanup(c.CloseIdleConnections)

	req := newRequest(t, "POST", base+"/h2?x=1", strings.NewReader("hello"))
	req.Host = "reviews:9080"
	req.Header.Set("End-User", "jason")
	resp, body := do(t, c, req)
	if resp.ProtoMajor != 2 {
		t.Fatalf("response proto %s, want HTTP/2", resp.Proto)
	}
	checkIdentity(t, resp, reviews)
	got := decode(t, resp, body).Request
	if got.Proto != "HTTP/2.0" || got.Path != "/h2?x=1" || got.Host != "reviews:9080" || got.BodyBytes != 5 {
		t.Errorf("request = %+v", got)
	}
	if v := got.Headers["End-User"]; len(v) != 1 || v[0] != "jason" {
		t.Errorf("End-User = %q", v)
	}

	// Controls work over HTTP/2 too.
	resp, body = do(t, c, newRequest(t, "GET", base+"/?status=503&size=1024", nil))
	if resp.StatusCode != 503 || len(body) != 1024 {
		t.Errorf("h2 controls: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	_, err = New(Options{Address: addr, Service: "x"}).Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), addr) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("err = %v, want EADDRINUSE naming %s", err, addr)
	}
	err = New(Options{Address: addr, Service: "x"}).ListenAndServe(context.Background())
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("ListenAndServe err = %v, want an error naming %s", err, addr)
	}
}

func TestListenAndServeStopsOnCancel(t *testing.T) {
	s := New(Options{Address: "127.0.0.1:0", Service: "x"})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe(ctx) }()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("ListenAndServe = %v, want nil after cancel", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ListenAndServe did not return after cancel")
	}
	if _, err := s.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
}

func BenchmarkJSON(b *testing.B) {
	h := New(reviews).Handler()
	req, _ := http.NewRequest("GET", "/productpage?u=normal", nil)
	req.RequestURI = "/productpage?u=normal"
	req.Header.Set("End-User", "jason")
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(discardWriter{http.Header{}}, req)
	}
}

func BenchmarkSize1K(b *testing.B) {
	h := New(reviews).Handler()
	req, _ := http.NewRequest("GET", "/?size=1024", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(discardWriter{http.Header{}}, req)
	}
}

type discardWriter struct{ h http.Header }

func (w discardWriter) Header() http.Header         { return w.h }
func (w discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w discardWriter) WriteHeader(int)             {}

// TestHandlerInProcess uses Handler without a listener, with a request whose
// Body is nil as http.NewRequest leaves it.
func TestHandlerInProcess(t *testing.T) {
	req, err := http.NewRequest("GET", "/in/process?status=202", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.RequestURI = "/in/process?status=202"
	rec := httptest.NewRecorder()
	New(reviews).Handler().ServeHTTP(rec, req)
	resp := rec.Result()
	if resp.StatusCode != 202 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	checkIdentity(t, resp, reviews)
	if got := decode(t, resp, rec.Body.Bytes()); got.Request.Path != "/in/process?status=202" || got.Request.BodyBytes != 0 {
		t.Errorf("request = %+v", got.Request)
	}
}
