package h2server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// protoHandler holds /hold open until the request ends (or 10 s) and
// answers anything else with dumpHandler.
func protoHandler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/hold" {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	dumpHandler(w, r)
}

// protoCase is frames sent on a fresh connection and how net/http answers
// them: the outcome of stream id (rawConn.outcome), and for a response a
// part of its body.
type protoCase struct {
	name string
	send func(rc *rawConn) (id uint32)
	want string
	body string
}

// req sends fields as one request on stream 1, with END_STREAM.
func req(fields ...string) func(rc *rawConn) uint32 {
	return func(rc *rawConn) uint32 {
		rc.writeHeaders(1, true, hf(fields...))
		return 1
	}
}

// getWith is a valid GET of / with extra fields.
func getWith(extra ...string) func(rc *rawConn) uint32 {
	return func(rc *rawConn) uint32 {
		rc.writeHeaders(1, true, get("/", extra...))
		return 1
	}
}

// postBody sends a POST with extra fields, then each of datas as a DATA
// frame, the last with END_STREAM.
func postBody(extra []string, datas ...string) func(rc *rawConn) uint32 {
	return func(rc *rawConn) uint32 {
		rc.writeHeaders(1, false, post("/", extra...))
		for i, d := range datas {
			rc.writeData(1, i == len(datas)-1, []byte(d))
		}
		return 1
	}
}

// then runs the steps in order and answers the last one's stream.
func then(steps ...func(rc *rawConn) uint32) func(rc *rawConn) uint32 {
	return func(rc *rawConn) (id uint32) {
		for _, s := range steps {
			id = s(rc)
		}
		return id
	}
}

// waitDone waits for stream id's answer before the next step.
func waitDone(id uint32) func(rc *rawConn) uint32 {
	return func(rc *rawConn) uint32 { rc.wait(id); return id }
}

// barrier pings, so the server has handled what came before.
func barrier(id uint32) func(rc *rawConn) uint32 {
	return func(rc *rawConn) uint32 { rc.ping([8]byte{9}); return id }
}

func headersOn(id uint32, end bool, fields ...string) func(rc *rawConn) uint32 {
	return func(rc *rawConn) uint32 { rc.writeHeaders(id, end, hf(fields...)); return id }
}

func dataOn(id uint32, end bool, data string) func(rc *rawConn) uint32 {
	return func(rc *rawConn) uint32 { rc.writeData(id, end, []byte(data)); return id }
}

func rawFrame(typ http2.FrameType, flags http2.Flags, id uint32, payload []byte) func(rc *rawConn) uint32 {
	return func(rc *rawConn) uint32 {
		rc.write(func(fr *http2.Framer) error { return fr.WriteRawFrame(typ, flags, id, payload) })
		return id
	}
}

var (
	okGet  = getWith()
	get3   = func(rc *rawConn) uint32 { rc.writeHeaders(3, true, get("/")); return 3 }
	dumped = `method="GET" url="/" uri="/" host="example.com"`
)

var protoCases = []protoCase{
	{"valid GET", okGet, "status 200", dumped},
	{"missing :method", req(":scheme", "http", ":authority", "a", ":path", "/"), "RST PROTOCOL_ERROR", ""},
	{"missing :path", req(":method", "GET", ":scheme", "http", ":authority", "a"), "RST PROTOCOL_ERROR", ""},
	{"missing :scheme", req(":method", "GET", ":authority", "a", ":path", "/"), "RST PROTOCOL_ERROR", ""},
	{"missing :authority", req(":method", "GET", ":scheme", "http", ":path", "/"), "status 200", `host=""`},
	{"empty :path", req(":method", "GET", ":scheme", "http", ":authority", "a", ":path", ""), "RST PROTOCOL_ERROR", ""},
	{":scheme ftp", req(":method", "GET", ":scheme", "ftp", ":authority", "a", ":path", "/"), "RST PROTOCOL_ERROR", ""},
	{":path without /", req(":method", "GET", ":scheme", "http", ":authority", "a", ":path", "x"), "RST PROTOCOL_ERROR", ""},
	{":path absolute URL", req(":method", "GET", ":scheme", "http", ":authority", "a", ":path", "http://b/c"), "status 200", `url="http://b/c" uri="http://b/c" host="a"`},
	{":path * OPTIONS", req(":method", "OPTIONS", ":scheme", "http", ":authority", "a", ":path", "*"), "status 200", `==`},
	{":path * GET", req(":method", "GET", ":scheme", "http", ":authority", "a", ":path", "*"), "status 200", `url="*" uri="*"`},
	{":path with space", req(":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/a b"), "status 200", `url="/a%20b" uri="/a b"`},
	{":method with space", req(":method", "G T", ":scheme", "http", ":authority", "a", ":path", "/"), "status 200", `method="G T"`},
	{":method lowercase", req(":method", "get", ":scheme", "http", ":authority", "a", ":path", "/"), "status 200", `method="get"`},
	{"duplicate :path", req(":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", ":path", "/"), "RST PROTOCOL_ERROR", ""},
	{"unknown pseudo-header", req(":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", ":foo", "x"), "RST PROTOCOL_ERROR", ""},
	{":status in a request", req(":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", ":status", "200"), "RST PROTOCOL_ERROR", ""},
	{"pseudo-header after a regular one", req(":method", "GET", ":scheme", "http", "x-a", "1", ":authority", "a", ":path", "/"), "RST PROTOCOL_ERROR", ""},
	{":protocol without CONNECT", getWith(":protocol", "websocket"), "RST PROTOCOL_ERROR", ""},
	{"extended CONNECT", req(":method", "CONNECT", ":protocol", "websocket", ":scheme", "http", ":authority", "a", ":path", "/"), "RST PROTOCOL_ERROR", ""},
	{"uppercase header name", getWith("X-Upper", "1"), "RST PROTOCOL_ERROR", ""},
	{"header name with space", getWith("x a", "1"), "RST PROTOCOL_ERROR", ""},
	{"header value with newline", getWith("x-a", "1\n2"), "RST PROTOCOL_ERROR", ""},
	{"header value with NUL", getWith("x-a", "1\x002"), "RST PROTOCOL_ERROR", ""},
	{"header value with leading space", getWith("x-a", " 1 "), "status 200", `"X-A":[" 1 "]`},
	{"empty header name", getWith("", "1"), "RST PROTOCOL_ERROR", ""},
	{"connection", getWith("connection", "close"), "status 400", ""},
	{"keep-alive", getWith("keep-alive", "timeout=5"), "status 400", ""},
	{"proxy-connection", getWith("proxy-connection", "keep-alive"), "status 400", ""},
	{"transfer-encoding", getWith("transfer-encoding", "chunked"), "status 400", ""},
	{"upgrade", getWith("upgrade", "websocket"), "status 400", ""},
	{"te trailers", getWith("te", "trailers"), "status 200", `"Te":["trailers"]`},
	{"te gzip", getWith("te", "gzip"), "status 400", ""},
	{"te trailers, gzip", getWith("te", "trailers, gzip"), "status 400", ""},
	{"host and :authority differ", getWith("host", "b"), "status 200", "host=\"example.com\" proto=\"HTTP/2.0\" 2.0\nheader=\"Host\":[\"b\"]"},
	{"CONNECT with :authority", req(":method", "CONNECT", ":authority", "a:443"), "status 200", `method="CONNECT" url="//a:443" uri="a:443" host="a:443"`},
	{"CONNECT without :authority", req(":method", "CONNECT"), "RST PROTOCOL_ERROR", ""},
	{"CONNECT with :path", req(":method", "CONNECT", ":authority", "a:443", ":path", "/"), "RST PROTOCOL_ERROR", ""},
	{"CONNECT with :scheme", req(":method", "CONNECT", ":authority", "a:443", ":scheme", "http"), "RST PROTOCOL_ERROR", ""},
	{"userinfo in :authority", req(":method", "GET", ":scheme", "http", ":authority", "u:p@a", ":path", "/"), "RST PROTOCOL_ERROR", ""},
	{"bad :authority", req(":method", "GET", ":scheme", "http", ":authority", "a b", ":path", "/"), "status 200", `host="a b"`},
	{"content-length not a number", postBody([]string{"content-length", "x"}, "abc"), "RST PROTOCOL_ERROR", ""},
	{"two content-lengths", postBody([]string{"content-length", "3", "content-length", "3"}, "abc"), "status 200", "\"Content-Length\":[\"3\" \"3\"] \ncontentLength=3\nbody=\"abc\" bodyErr=false"},
	{"content-length on END_STREAM HEADERS", getWith("content-length", "5"), "status 200", "\"Content-Length\":[\"5\"] \ncontentLength=0\nbody=\"\" bodyErr=false"},
	{"DATA beyond content-length", postBody([]string{"content-length", "3"}, "abcd"), "RST PROTOCOL_ERROR", ""},
	{"DATA beyond content-length, second frame", postBody([]string{"content-length", "3"}, "abc", "d"), "RST PROTOCOL_ERROR", ""},
	{"END_STREAM short of content-length", postBody([]string{"content-length", "5"}, "abc"), "status 200", "contentLength=5\nbody=\"abc\" bodyErr=true"},
	{"even stream id", headersOn(2, true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/"), "GOAWAY PROTOCOL_ERROR", ""},
	{"stream id lower than before", then(headersOn(5, true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/"), waitDone(5), get3), "GOAWAY PROTOCOL_ERROR", ""},
	{"HEADERS on a half-closed stream", then(headersOn(1, true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/hold"), barrier(1), headersOn(1, true, "x-a", "1")), "RST STREAM_CLOSED", ""},
	{"HEADERS on a closed stream", then(okGet, waitDone(1), headersOn(1, true, "x-a", "1"), barrier(1), get3), "GOAWAY PROTOCOL_ERROR", ""},
	{"DATA on an idle stream", dataOn(1, true, "x"), "GOAWAY PROTOCOL_ERROR", ""},
	{"DATA on stream 0", dataOn(0, true, "x"), "GOAWAY PROTOCOL_ERROR", ""},
	{"DATA on a half-closed stream", then(headersOn(1, true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/hold"), barrier(1), dataOn(1, true, "x")), "RST STREAM_CLOSED", ""},
	{"DATA on a closed stream", then(okGet, waitDone(1), dataOn(1, true, "x"), barrier(1), get3), "status 200; RST_STREAM[1] STREAM_CLOSED", ""},
	{"pseudo-header in trailers", then(postBody(nil), dataOn(1, false, "abc"), headersOn(1, true, ":path", "/x")), "RST PROTOCOL_ERROR", ""},
	{"trailers without END_STREAM", then(postBody(nil), dataOn(1, false, "abc"), headersOn(1, false, "x-t", "1"), barrier(1)), "RST PROTOCOL_ERROR", ""},
	{"undeclared trailers", then(postBody(nil), dataOn(1, false, "abc"), headersOn(1, true, "x-t", "1")), "status 200", "body=\"abc\" bodyErr=false\ntrailer=nil"},
	{"connection-specific trailer", then(postBody(nil), dataOn(1, false, "abc"), headersOn(1, true, "connection", "close")), "status 200", "body=\"abc\" bodyErr=false\ntrailer=nil"},
	{"PUSH_PROMISE", then(headersOn(1, false, ":method", "POST", ":scheme", "http", ":authority", "a", ":path", "/hold"), func(rc *rawConn) uint32 {
		rc.write(func(fr *http2.Framer) error {
			return fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: encodeBlock(get("/")), EndHeaders: true})
		})
		return 1
	}), "GOAWAY PROTOCOL_ERROR", ""},
	{"unknown frame type", then(rawFrame(0xfa, 0, 0, []byte("x")), rawFrame(0xfa, 0xff, 1, []byte("y")), okGet), "status 200", dumped},
	{"PRIORITY before HEADERS", then(func(rc *rawConn) uint32 {
		rc.write(func(fr *http2.Framer) error {
			return fr.WritePriority(1, http2.PriorityParam{StreamDep: 0, Weight: 200})
		})
		rc.write(func(fr *http2.Framer) error {
			return fr.WritePriority(7, http2.PriorityParam{StreamDep: 3, Weight: 1, Exclusive: true})
		})
		return 1
	}, okGet), "status 200", dumped},
	{"PRIORITY on itself", func(rc *rawConn) uint32 {
		rc.write(func(fr *http2.Framer) error {
			return fr.WritePriority(1, http2.PriorityParam{StreamDep: 1, Weight: 1})
		})
		return 1
	}, "RST PROTOCOL_ERROR", ""},
	{"RST_STREAM on an idle stream", func(rc *rawConn) uint32 { rc.writeRST(1, http2.ErrCodeCancel); return 1 }, "GOAWAY PROTOCOL_ERROR", ""},
	{"WINDOW_UPDATE 0 on the connection", then(func(rc *rawConn) uint32 { rc.writeWindowUpdate(0, 0); return 1 }, okGet), "GOAWAY PROTOCOL_ERROR", ""},
	{"WINDOW_UPDATE 0 on a stream", then(headersOn(1, false, ":method", "POST", ":scheme", "http", ":authority", "a", ":path", "/hold"), func(rc *rawConn) uint32 { rc.writeWindowUpdate(1, 0); return 1 }), "RST PROTOCOL_ERROR", ""},
	{"WINDOW_UPDATE past 2^31-1", then(func(rc *rawConn) uint32 { rc.writeWindowUpdate(0, 1<<31-1); return 1 }, okGet), "GOAWAY FLOW_CONTROL_ERROR", ""},
	{"SETTINGS INITIAL_WINDOW_SIZE past 2^31-1", then(func(rc *rawConn) uint32 {
		rc.writeSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31})
		return 1
	}, okGet), "GOAWAY FLOW_CONTROL_ERROR", ""},
	{"SETTINGS MAX_FRAME_SIZE too small", then(func(rc *rawConn) uint32 {
		rc.writeSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 100})
		return 1
	}, okGet), "GOAWAY PROTOCOL_ERROR", ""},
	{"SETTINGS on a stream", then(rawFrame(http2.FrameSettings, 0, 1, nil), okGet), "GOAWAY PROTOCOL_ERROR", ""},
	{"SETTINGS of odd length", then(rawFrame(http2.FrameSettings, 0, 0, []byte{0, 1, 0}), okGet), "GOAWAY FRAME_SIZE_ERROR", ""},
	{"unknown SETTINGS", then(rawFrame(http2.FrameSettings, 0, 0, []byte{0xff, 0xee, 0, 0, 0, 1}), okGet), "status 200", dumped},
	{"PING on a stream", then(rawFrame(http2.FramePing, 0, 1, make([]byte, 8)), okGet), "GOAWAY PROTOCOL_ERROR", ""},
	{"frame over MAX_FRAME_SIZE", then(headersOn(1, false, ":method", "POST", ":scheme", "http", ":authority", "a", ":path", "/"), dataOn(1, true, strings.Repeat("x", 1<<20+1))), "GOAWAY FRAME_SIZE_ERROR", ""},
	{"bad hpack", then(rawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, 1, []byte{0xff, 0xff, 0xff, 0xff, 0xff})), "GOAWAY COMPRESSION_ERROR", ""},
	{"CONTINUATION without HEADERS", then(rawFrame(http2.FrameContinuation, http2.FlagContinuationEndHeaders, 1, encodeBlock(get("/")))), "GOAWAY PROTOCOL_ERROR", ""},
	{"HEADERS then another stream's CONTINUATION", func(rc *rawConn) uint32 {
		b := encodeBlock(get("/"))
		rc.write(func(fr *http2.Framer) error {
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:2], EndStream: true})
		})
		rc.write(func(fr *http2.Framer) error { return fr.WriteContinuation(3, true, b[2:]) })
		return 1
	}, "GOAWAY PROTOCOL_ERROR", ""},
	{"padded DATA", then(headersOn(1, false, ":method", "POST", ":scheme", "http", ":authority", "a", ":path", "/"), func(rc *rawConn) uint32 {
		rc.write(func(fr *http2.Framer) error { return fr.WriteDataPadded(1, true, []byte("abc"), make([]byte, 10)) })
		return 1
	}), "status 200", `body="abc" bodyErr=false`},
	{"padding past the frame", then(headersOn(1, false, ":method", "POST", ":scheme", "http", ":authority", "a", ":path", "/"),
		rawFrame(http2.FrameData, http2.FlagDataPadded|http2.FlagDataEndStream, 1, []byte{10, 'a'})), "GOAWAY PROTOCOL_ERROR", ""},
	{"empty DATA frames", postBody(nil, "", "", "abc", ""), "status 200", `body="abc" bodyErr=false`},
	{"padded HEADERS with priority", func(rc *rawConn) uint32 {
		rc.write(func(fr *http2.Framer) error {
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: encodeBlock(get("/")), EndStream: true,
				EndHeaders: true, PadLength: 7, Priority: http2.PriorityParam{StreamDep: 0, Weight: 10}})
		})
		return 1
	}, "status 200", dumped},
	{"HEADERS depending on itself", func(rc *rawConn) uint32 {
		rc.write(func(fr *http2.Framer) error {
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: encodeBlock(get("/")), EndStream: true,
				EndHeaders: true, Priority: http2.PriorityParam{StreamDep: 1, Weight: 10}})
		})
		return 1
	}, "RST PROTOCOL_ERROR", ""},
	{"HEADERS without fields", headersOn(1, true), "RST PROTOCOL_ERROR", ""},
	{"WINDOW_UPDATE on a closed stream", then(okGet, waitDone(1), func(rc *rawConn) uint32 { rc.writeWindowUpdate(1, 100); return 1 }, barrier(1), get3), "status 200", dumped},
	{"RST_STREAM on a closed stream", then(okGet, waitDone(1), func(rc *rawConn) uint32 { rc.writeRST(1, http2.ErrCodeCancel); return 1 }, barrier(1), get3), "status 200", dumped},
	{"PRIORITY on a closed stream", then(okGet, waitDone(1), func(rc *rawConn) uint32 {
		rc.write(func(fr *http2.Framer) error { return fr.WritePriority(1, http2.PriorityParam{Weight: 5}) })
		return 1
	}, barrier(1), get3), "status 200", dumped},
	{"SETTINGS ENABLE_PUSH 2", then(func(rc *rawConn) uint32 {
		rc.writeSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 2})
		return 1
	}, okGet), "GOAWAY PROTOCOL_ERROR", ""},
	// A client's GOAWAY lets the streams it has open finish.
	{"GOAWAY from the client", then(okGet, func(rc *rawConn) uint32 {
		rc.write(func(fr *http2.Framer) error { return fr.WriteGoAway(0, http2.ErrCodeNo, nil) })
		return 1
	}), "status 200", dumped},
}

// bodyMatches is whether body contains want, or with want "==" followed
// by something, is it.
func bodyMatches(body, want string) bool {
	if exact, ok := strings.CutPrefix(want, "=="); ok {
		return body == exact
	}
	return strings.Contains(body, want)
}

// otherResets lists the RST_STREAMs read on streams other than id.
func (rc *rawConn) otherResets(id uint32) string {
	var s string
	for _, f := range rc.frames {
		if strings.HasPrefix(f, "RST_STREAM[") && !strings.HasPrefix(f, fmt.Sprintf("RST_STREAM[%d]", id)) {
			s += "; " + f
		}
	}
	return s
}

// encodeBlock is fields as a header block, with an encoder of its own.
func encodeBlock(fields []hpack.HeaderField) []byte {
	var b bytes.Buffer
	e := hpack.NewEncoder(&b)
	for _, f := range fields {
		e.WriteField(f)
	}
	return b.Bytes()
}

// Requests and frames that RFC 9113 (and net/http) has a server refuse,
// and a few it has it ignore, each on a fresh connection: the answer
// (status, RST_STREAM code, GOAWAY code, or closed) is net/http's.
func TestProtocolChecks(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(protoHandler), config{})
		for _, c := range protoCases {
			rc := dialHandshake(t, ts.Addr)
			rc.timeout = 3 * time.Second
			id := c.send(rc)
			got := rc.wait(id) + rc.otherResets(id)
			if got != c.want || !bodyMatches(rc.body(id), c.body) {
				t.Errorf("%s: %q, want %q (body %q)\n  frames: %s\n  body: %s", c.name, got, c.want, c.body, rc.dump(), rc.body(id))
			}
			rc.c.Close()
		}
	})
}

// A PING is answered with an ACK of the same data; a client's
// unsolicited PING ACK is ignored.
func TestPing(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(protoHandler), config{})
		rc := dialHandshake(t, ts.Addr)
		if !rc.ping([8]byte{'h', '2', 's', 'e', 'r', 'v', 'e', 'r'}) {
			t.Fatalf("no PING ACK: %v; frames:\n  %s", rc.readErr, rc.dump())
		}
		rc.write(func(fr *http2.Framer) error { return fr.WritePing(true, [8]byte{1, 2}) })
		rc.writeHeaders(1, true, get("/"))
		if o := rc.wait(1); o != "status 200" {
			t.Errorf("after an unsolicited PING ACK: %q; frames:\n  %s", o, rc.dump())
		}
		for _, a := range rc.pingAcks {
			if a != [8]byte{'h', '2', 's', 'e', 'r', 'v', 'e', 'r'} {
				t.Errorf("PING ACK with %q", a)
			}
		}
	})
}

// Each SETTINGS a client sends is ACKed, the first and later ones (each
// waited for before the next: net/http ACKs SETTINGS that arrive
// together with one ACK).
func TestSettingsAcked(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(protoHandler), config{})
		rc := dialHandshake(t, ts.Addr, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
		for i, s := range [][]http2.Setting{
			{{ID: http2.SettingHeaderTableSize, Val: 0}, {ID: http2.SettingEnablePush, Val: 0}},
			{},
		} {
			rc.writeSettings(s...)
			if !rc.waitFor(func() bool { return rc.settingsAcks == i+2 }) {
				t.Fatalf("%d SETTINGS ACKs, want %d: %v; frames:\n  %s", rc.settingsAcks, i+2, rc.readErr, rc.dump())
			}
		}
		rc.writeHeaders(1, true, get("/"))
		if o := rc.wait(1); o != "status 200" {
			t.Errorf("after SETTINGS: %q; frames:\n  %s", o, rc.dump())
		}
		if _, ok := rc.serverSettings[http2.SettingMaxConcurrentStreams]; !ok {
			t.Errorf("server SETTINGS without MAX_CONCURRENT_STREAMS: %v", rc.serverSettings)
		}
	})
}

// A header list past MaxHeaderBytes is answered 431 (and one well within
// it is served), in one HEADERS frame or with CONTINUATIONs. net/http's
// Framer gives up on a header block far past the limit: a CONTINUATION
// after the limit or a fragment over twice what is left of it is a
// PROTOCOL_ERROR, and a single field longer than the whole limit a
// COMPRESSION_ERROR (its hpack decoder refuses the string).
func TestMaxHeaderBytes(t *testing.T) {
	cfg := config{MaxHeaderBytes: 4096}
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(protoHandler), cfg)
		for _, c := range []struct {
			fields, size, frag int
			want               string
		}{
			{2, 1000, 16384, "status 200"},
			{3, 1000, 1000, "status 200"},
			{6, 1000, 16384, "status 431"},
			{5, 1000, 3000, "status 431"},
			{40, 1000, 16384, "GOAWAY PROTOCOL_ERROR"},
			{1, 10000, 16384, "GOAWAY COMPRESSION_ERROR"},
		} {
			rc := dialHandshake(t, ts.Addr)
			rc.maxFrag = c.frag
			var extra []string
			for j := range c.fields {
				extra = append(extra, fmt.Sprintf("x-big-%d", j), strings.Repeat("b", c.size))
			}
			rc.writeHeaders(1, true, get("/", extra...))
			if o := rc.wait(1); o != c.want {
				t.Errorf("%d fields of %d bytes in fragments of %d: %q, want %q; frames:\n  %s", c.fields, c.size, c.frag, o, c.want, rc.dump())
			}
			rc.c.Close()
		}
	})
}
