package h2server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pattern is n bytes that differ from one position to the next.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// basicHandler serves /get?n= (n bytes), /echo (the request body) and
// /resp (a small response with multi-valued headers).
func basicHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	switch r.URL.Path {
	case "/get":
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(pattern(n))
	case "/echo":
		io.Copy(w, r.Body)
	case "/resp":
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "hello")
	}
}

var bodySizes = []int{0, 1 << 10, 3 << 20}

func TestGetAndPostBodies(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(basicHandler), config{})
		c := client(t, config{})
		for _, n := range bodySizes {
			res, err := c.Get(ts.url(config{}, fmt.Sprintf("/get?n=%d", n)))
			if err != nil {
				t.Fatalf("GET %d: %v", n, err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 || !bytes.Equal(body, pattern(n)) {
				t.Errorf("GET n=%d: status %d, %d bytes (equal %v), err %v", n, res.StatusCode, len(body), bytes.Equal(body, pattern(n)), err)
			}
			res, err = c.Post(ts.url(config{}, "/echo"), "application/octet-stream", bytes.NewReader(pattern(n)))
			if err != nil {
				t.Fatalf("POST %d: %v", n, err)
			}
			body, err = io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 || !bytes.Equal(body, pattern(n)) {
				t.Errorf("POST n=%d: status %d, %d bytes (equal %v), err %v", n, res.StatusCode, len(body), bytes.Equal(body, pattern(n)), err)
			}
		}
	})
}

// reqView is what a handler saw of a request.
type reqView struct {
	Method, URL, RequestURI, Host, Proto string
	ProtoMajor, ProtoMinor               int
	ContentLength                        int64
	RemoteAddr                           bool // non-empty
	TLS                                  bool
	Header                               http.Header
	TrailerBefore                        []string // declared keys, before the body is read
	Body                                 string
	BodyErr                              bool
	Trailer                              http.Header // after EOF
}

// viewHandler sends what it saw of each request to views and answers
// 200 "ok".
func viewHandler(views chan<- reqView) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := reqView{
			Method: r.Method, URL: r.URL.String(), RequestURI: r.RequestURI, Host: r.Host,
			Proto: r.Proto, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
			ContentLength: r.ContentLength, RemoteAddr: r.RemoteAddr != "", TLS: r.TLS != nil,
			Header: r.Header.Clone(),
		}
		for k := range r.Trailer {
			v.TrailerBefore = append(v.TrailerBefore, k)
		}
		body, err := io.ReadAll(r.Body)
		v.Body, v.BodyErr = string(body), err != nil
		if len(r.Trailer) > 0 {
			v.Trailer = r.Trailer.Clone()
		}
		views <- v
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	}
}

func TestRequestAsHandlerSeesIt(t *testing.T) {
	base := reqView{Method: "GET", URL: "/v?a=b", RequestURI: "/v?a=b", Host: "example.com:8080",
		Proto: "HTTP/2.0", ProtoMajor: 2, RemoteAddr: true}
	cases := []struct {
		name    string
		send    func(rc *rawConn, id uint32)
		changes func(v *reqView)
	}{
		{"GET END_STREAM on HEADERS", func(rc *rawConn, id uint32) {
			rc.writeHeaders(id, true, hf(":method", "GET", ":scheme", "http", ":authority", "example.com:8080", ":path", "/v?a=b",
				"cookie", "a=1", "x-multi", "1", "cookie", "b=2", "x-multi", "2"))
		}, func(v *reqView) {
			v.Header = http.Header{"Cookie": {"a=1; b=2"}, "X-Multi": {"1", "2"}}
		}},
		{"POST content-length", func(rc *rawConn, id uint32) {
			rc.writeHeaders(id, false, hf(":method", "POST", ":scheme", "http", ":authority", "example.com:8080", ":path", "/v?a=b", "content-length", "5"))
			rc.writeData(id, false, []byte("hel"))
			rc.writeData(id, true, []byte("lo"))
		}, func(v *reqView) {
			v.Method, v.ContentLength, v.Body = "POST", 5, "hello"
			v.Header = http.Header{"Content-Length": {"5"}}
		}},
		{"POST no content-length", func(rc *rawConn, id uint32) {
			rc.writeHeaders(id, false, hf(":method", "POST", ":scheme", "http", ":authority", "example.com:8080", ":path", "/v?a=b"))
			rc.writeData(id, true, []byte("abc"))
		}, func(v *reqView) {
			v.Method, v.ContentLength, v.Body = "POST", -1, "abc"
			v.Header = http.Header{}
		}},
		{"POST declared trailers", func(rc *rawConn, id uint32) {
			rc.writeHeaders(id, false, hf(":method", "POST", ":scheme", "http", ":authority", "example.com:8080", ":path", "/v?a=b", "trailer", "x-t, x-u"))
			rc.writeData(id, false, []byte("abc"))
			rc.writeHeaders(id, true, hf("x-t", "tv", "x-u", "uv"))
		}, func(v *reqView) {
			v.Method, v.ContentLength, v.Body = "POST", -1, "abc"
			v.Header = http.Header{} // net/http takes Trailer out of the header
			v.TrailerBefore = []string{"X-T", "X-U"}
			v.Trailer = http.Header{"X-T": {"tv"}, "X-U": {"uv"}}
		}},
		{"CONNECT", func(rc *rawConn, id uint32) {
			rc.writeHeaders(id, true, hf(":method", "CONNECT", ":authority", "example.com:8080"))
		}, func(v *reqView) {
			v.Method, v.URL, v.RequestURI = "CONNECT", "//example.com:8080", "example.com:8080"
			v.Header = http.Header{}
		}},
		{"host header without authority", func(rc *rawConn, id uint32) {
			rc.writeHeaders(id, true, hf(":method", "GET", ":scheme", "http", ":path", "/v?a=b", "host", "example.com:8080"))
		}, func(v *reqView) {
			v.Header = http.Header{"Host": {"example.com:8080"}}
		}},
	}
	forKinds(t, func(t *testing.T, kind string) {
		views := make(chan reqView, 1)
		ts := startServer(t, kind, viewHandler(views), config{})
		rc := dialHandshake(t, ts.Addr)
		for i, c := range cases {
			id := uint32(2*i + 1)
			c.send(rc, id)
			if o := rc.wait(id); o != "status 200" {
				t.Fatalf("%s: outcome %q, frames:\n  %s", c.name, o, rc.dump())
			}
			got := within(t, time.Second, views, "the handler's view")
			want := base
			c.changes(&want)
			slices.Sort(got.TrailerBefore)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s:\ngot  %+v\nwant %+v", c.name, got, want)
			}
		}
	})
}

func TestResponseAsClientSeesIt(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(basicHandler), config{})
		rc := dialHandshake(t, ts.Addr)
		rc.writeHeaders(1, true, get("/resp"))
		if o := rc.wait(1); o != "status 201" {
			t.Fatalf("outcome %q, frames:\n  %s", o, rc.dump())
		}
		st := rc.streams[1]
		h := st.header
		if got := h["X-Multi"]; !reflect.DeepEqual(got, []string{"a", "b"}) {
			t.Errorf("x-multi: %q, want [a b]", got)
		}
		if got := h.Get("Content-Length"); got != "5" {
			t.Errorf("content-length: %q, want 5", got)
		}
		if got := h.Get("Content-Type"); got != "application/octet-stream" {
			t.Errorf("content-type: %q", got)
		}
		if _, err := http.ParseTime(h.Get("Date")); err != nil {
			t.Errorf("date: %q: %v", h.Get("Date"), err)
		}
		if got := st.body.String(); got != "hello" {
			t.Errorf("body %q", got)
		}
		if st.trailer != nil {
			t.Errorf("trailers %v", st.trailer)
		}
	})
}

// trailerHandler answers /declared with a declared trailer and one under
// http.TrailerPrefix, and /grpc as a gRPC server answers.
func trailerHandler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/declared":
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Trailer", "X-A")
		io.WriteString(w, "body")
		w.Header().Set("X-A", "a")
		w.Header().Set(http.TrailerPrefix+"X-B", "b")
	case "/grpc":
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		w.Write([]byte{0, 0, 0, 0, 2, 'h', 'i'})
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set(http.TrailerPrefix+"Grpc-Message", "fine")
	}
}

func TestResponseTrailers(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(trailerHandler), config{})
		rc := dialHandshake(t, ts.Addr)
		rc.writeHeaders(1, true, get("/declared"))
		rc.writeHeaders(3, true, get("/grpc"))
		for _, c := range []struct {
			id      uint32
			body    string
			trailer http.Header
			length  string // content-length: net/http sets it for a handler that returned
			decl    string // the trailer header, as the handler set it
		}{
			{1, "body", http.Header{"X-A": {"a"}, "X-B": {"b"}}, "4", "X-A"},
			{3, "\x00\x00\x00\x00\x02hi", http.Header{"Grpc-Status": {"0"}, "Grpc-Message": {"fine"}}, "", "Grpc-Status"},
		} {
			if o := rc.wait(c.id); o != "status 200" {
				t.Fatalf("stream %d: outcome %q, frames:\n  %s", c.id, o, rc.dump())
			}
			st := rc.streams[c.id]
			if st.body.String() != c.body || !reflect.DeepEqual(st.trailer, c.trailer) {
				t.Errorf("stream %d: body %q trailer %v, want %q %v", c.id, st.body.String(), st.trailer, c.body, c.trailer)
			}
			if got := st.header.Get("Content-Length"); got != c.length {
				t.Errorf("stream %d: content-length %q, want %q", c.id, got, c.length)
			}
			if got := st.header["Trailer"]; !reflect.DeepEqual(got, []string{c.decl}) {
				t.Errorf("stream %d: trailer header %q, want %q", c.id, got, c.decl)
			}
		}
		// The gRPC response's HEADERS went out (flushed) before its DATA.
		if !strings.HasPrefix(rc.frames[rc.streams[3].headersAt-1], "HEADERS[3] end=false") {
			t.Errorf("gRPC response: %s", rc.dump())
		}
	})
}

func TestGRPCTrailersWithTransport(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(trailerHandler), config{})
		res, err := client(t, config{}).Get(ts.url(config{}, "/grpc"))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || string(body) != "\x00\x00\x00\x00\x02hi" {
			t.Fatalf("status %d body %q err %v", res.StatusCode, body, err)
		}
		if got := res.Trailer.Get("Grpc-Status"); got != "0" {
			t.Errorf("grpc-status trailer %q (trailers %v)", got, res.Trailer)
		}
		if got := res.Trailer.Get("Grpc-Message"); got != "fine" {
			t.Errorf("grpc-message trailer %q (trailers %v)", got, res.Trailer)
		}
	})
}

// The request's trailers, sent after DATA, are in r.Trailer after the
// body's EOF (and not before: the declared keys have no values then).
func TestRequestTrailers(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		type seen struct{ before, after http.Header }
		ch := make(chan seen, 1)
		ts := startServer(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var s seen
			s.before = r.Trailer.Clone()
			io.ReadAll(r.Body)
			s.after = r.Trailer.Clone()
			ch <- s
			w.Header().Set("Content-Type", "text/plain")
		}), config{})
		rc := dialHandshake(t, ts.Addr)
		rc.writeHeaders(1, false, post("/", "trailer", "X-T"))
		rc.writeData(1, false, []byte("data"))
		rc.writeHeaders(1, true, hf("x-t", "1", "x-t", "2"))
		if o := rc.wait(1); o != "status 200" {
			t.Fatalf("outcome %q, frames:\n  %s", o, rc.dump())
		}
		s := within(t, time.Second, ch, "handler")
		if !reflect.DeepEqual(s.before, http.Header{"X-T": nil}) {
			t.Errorf("trailers before EOF: %#v", s.before)
		}
		if !reflect.DeepEqual(s.after, http.Header{"X-T": {"1", "2"}}) {
			t.Errorf("trailers after EOF: %#v", s.after)
		}
	})
}
