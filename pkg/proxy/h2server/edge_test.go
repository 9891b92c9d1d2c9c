package h2server_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// edgeHandler answers with the responses at the edges of the rules.
func edgeHandler(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	switch r.URL.Path {
	case "/hop":
		for _, k := range []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Proxy-Connection"} {
			h.Set(k, "x")
		}
		h.Set("X-Good", "1")
		h["X-Bad-Value"] = []string{"a\nb"}
		h["X-Bad Name"] = []string{"1"}
		h["x-Mixed-case"] = []string{"v"}
		h["X-Empty"] = []string{""}
		io.WriteString(w, "hop")
	case "/hello":
		io.WriteString(w, "hello")
	case "/204":
		w.WriteHeader(204)
		io.WriteString(w, "x")
	case "/304":
		h.Set("Etag", `"x"`)
		w.WriteHeader(304)
		io.WriteString(w, "x")
	case "/cl-exact":
		h.Set("Content-Length", "5")
		io.WriteString(w, "hello")
	case "/cl-short":
		h.Set("Content-Length", "10")
		io.WriteString(w, "hello")
	case "/cl-long":
		h.Set("Content-Length", "3")
		io.WriteString(w, "hello")
	case "/1xx":
		h.Set("Link", "</a>; rel=preload")
		w.WriteHeader(103)
		h.Del("Link")
		w.WriteHeader(200)
		io.WriteString(w, "after")
	case "/big-header":
		h.Set("X-Big", strings.Repeat("v", 50000))
		io.WriteString(w, "big")
	case "/status-999":
		w.WriteHeader(999)
	case "/no-write":
	case "/empty-write":
		w.Write(nil)
	case "/flush-only":
		w.(http.Flusher).Flush()
	}
}

// Responses at the edges: response headers net/http must not send
// (connection-specific ones, invalid names and values) dropped and names
// lowercased, HEAD, 204 and 304 without a body, a handler's own
// Content-Length, 1xx before the response, a header block larger than a
// frame (CONTINUATION), an unusual status, and empty bodies. Each header
// set is exact (but for Date): nothing added, nothing lost.
//
// net/http sends Keep-Alive, Proxy-Connection and Upgrade response
// headers (RFC 9113 8.2.2 says it must not), so those are not checked;
// nor are a Content-Length the handler declares and then does not keep
// to (net/http sends what was written, with that Content-Length).
func TestResponseEdges(t *testing.T) {
	cases := []struct {
		req    string // method and path
		status string
		header string // sorted name=value, but for Date
		body   string
		info   []string // 1xx
	}{
		{"GET /hop", "200", "content-length=3 content-type=text/plain x-empty= x-good=1 x-mixed-case=v", "hop", nil},
		{"HEAD /hello", "200", "content-length=5 content-type=text/plain", "", nil},
		{"GET /204", "204", "content-type=text/plain", "", nil},
		{"GET /304", "304", "content-type=text/plain etag=\"x\"", "", nil},
		{"GET /cl-exact", "200", "content-length=5 content-type=text/plain", "hello", nil},
		{"HEAD /cl-long", "200", "content-length=3 content-type=text/plain", "", nil},
		{"GET /1xx", "200", "content-length=5 content-type=text/plain", "after", []string{"103"}},
		{"GET /big-header", "200", "content-length=3 content-type=text/plain x-big=" + strings.Repeat("v", 50000), "big", nil},
		{"GET /status-999", "999", "content-length=0 content-type=text/plain", "", nil},
		{"GET /no-write", "200", "content-length=0 content-type=text/plain", "", nil},
		{"GET /empty-write", "200", "content-length=0 content-type=text/plain", "", nil},
		{"GET /flush-only", "200", "content-type=text/plain", "", nil},
		{"HEAD /flush-only", "200", "content-type=text/plain", "", nil},
	}
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(edgeHandler), config{})
		rc := dialHandshake(t, ts.Addr)
		for i, c := range cases {
			id := uint32(2*i + 1)
			method, path, _ := strings.Cut(c.req, " ")
			rc.writeHeaders(id, true, hf(":method", method, ":scheme", "http", ":authority", "a", ":path", path))
			if o := rc.wait(id); o != "status "+c.status {
				t.Errorf("%s: %q, want status %s; frames:\n  %s", c.req, o, c.status, rc.dump())
				continue
			}
			st := rc.streams[id]
			if got := headerLine(st.header, "Keep-Alive", "Proxy-Connection", "Upgrade"); got != c.header {
				t.Errorf("%s: header\n  %.300s\nwant\n  %.300s", c.req, got, c.header)
			}
			if st.body.String() != c.body || !slices.Equal(st.informational, c.info) {
				t.Errorf("%s: body %q 1xx %v, want %q %v", c.req, st.body.String(), st.informational, c.body, c.info)
			}
			if _, err := http.ParseTime(st.header.Get("Date")); err != nil {
				t.Errorf("%s: date %q", c.req, st.header.Get("Date"))
			}
		}
	})
}

// headerLine is h sorted as name=value (names lowercased, as on the
// wire), without Date and the skipped names.
func headerLine(h http.Header, skip ...string) string {
	var kv []string
	for k, vv := range h {
		if k == "Date" || slices.Contains(skip, k) {
			continue
		}
		for _, v := range vv {
			kv = append(kv, strings.ToLower(k)+"="+v)
		}
	}
	slices.Sort(kv)
	return strings.Join(kv, " ")
}

// A handler that answers without reading the request body: the client
// gets the whole response, then RST_STREAM NO_ERROR (RFC 9113 8.1); the
// body it had sent (unread) is given back to the connection's window, so
// a later upload larger than what is left of it completes.
func TestHandlerIgnoresBody(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(flowHandler), config{})
		rc := dialHandshake(t, ts.Addr)
		rc.ping([8]byte{1})
		rc.writeHeaders(1, false, post("/get?n=5"))
		rc.upload(1, pattern(600<<10), false)
		if o := rc.wait(1); o != "status 200" || rc.body(1) != string(pattern(5)) {
			t.Fatalf("outcome %q body %q; frames:\n  %s", o, rc.body(1), rc.dump())
		}
		if !rc.waitFor(func() bool { return rc.streams[1].rst != nil }) {
			t.Fatalf("no RST_STREAM after the response: %v; frames:\n  %s", rc.readErr, rc.dump())
		}
		if code := *rc.streams[1].rst; code != http2.ErrCodeNo {
			t.Errorf("RST_STREAM %v after the response, want NO_ERROR", code)
		}
		rc.writeHeaders(3, false, post("/count"))
		if !rc.upload(3, pattern(1<<20), true) {
			t.Fatalf("second upload: %v; frames:\n  %s", rc.readErr, rc.dump())
		}
		if o := rc.wait(3); o != "status 200" || rc.body(3) != "n=1048576 ok=true err=<nil>" {
			t.Errorf("second upload: %q %q; frames:\n  %s", o, rc.body(3), rc.dump())
		}
	})
}

// Expect: 100-continue: the server sends 100 Continue when the handler
// first reads the body, and none when it answers without reading.
func TestExpectContinue(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(flowHandler), config{})
		rc := dialHandshake(t, ts.Addr)
		rc.writeHeaders(1, false, post("/count", "expect", "100-continue"))
		st := rc.stream(1)
		if !rc.waitFor(func() bool { return len(st.informational) > 0 || rc.outcome(1) != "" }) || !slices.Equal(st.informational, []string{"100"}) {
			t.Fatalf("no 100 Continue: %v; frames:\n  %s", rc.readErr, rc.dump())
		}
		rc.writeData(1, true, pattern(3))
		if o := rc.wait(1); o != "status 200" || rc.body(1) != "n=3 ok=true err=<nil>" {
			t.Errorf("after 100: %q %q; frames:\n  %s", o, rc.body(1), rc.dump())
		}
		rc.writeHeaders(3, false, post("/get?n=2", "expect", "100-continue"))
		if o := rc.wait(3); o != "status 200" || rc.streams[3].informational != nil {
			t.Errorf("handler not reading: %q 1xx %v; frames:\n  %s", o, rc.streams[3].informational, rc.dump())
		}
	})
}

// Once the client resets a stream, the handler's writes fail (so a
// proxy stops copying a response nobody reads).
func TestWriteAfterResetFails(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		errc := make(chan error, 1)
		ts := startServer(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			chunk := pattern(1 << 10)
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := w.Write(chunk); err != nil {
					errc <- err
					return
				}
				w.(http.Flusher).Flush()
			}
			errc <- nil
		}), config{})
		rc := dialHandshake(t, ts.Addr)
		rc.writeHeaders(1, true, get("/"))
		st := rc.stream(1)
		if !rc.waitFor(func() bool { return st.recvd > 0 }) {
			t.Fatalf("no DATA: %v", rc.readErr)
		}
		rc.writeRST(1, http2.ErrCodeCancel)
		if err := within(t, 6*time.Second, errc, "the handler's write to fail"); err == nil {
			t.Error("the handler wrote for 5 s after the client reset the stream")
		}
	})
}
