package h2server_test

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

// fuzzNames are the field names a selector byte below 0x80 picks: the
// pseudo-headers and fields a server checks, so fuzzing reaches valid
// requests (and the edges of validity) quickly.
var fuzzNames = []string{
	":method", ":scheme", ":authority", ":path", ":protocol", ":status",
	"content-length", "te", "cookie", "host", "trailer", "connection",
	"transfer-encoding", "content-type", "expect", "x-a", "upgrade", "keep-alive",
}

// decodeFields reads header fields from b: a selector byte (below 0x80:
// fuzzNames[sel%len]; else a literal name of sel&0x7f bytes), then a
// length byte and the value. A truncated input ends the list.
func decodeFields(b []byte) []hpack.HeaderField {
	var fs []hpack.HeaderField
	take := func(n int) string {
		n = min(n, len(b))
		s := string(b[:n])
		b = b[n:]
		return s
	}
	for len(b) > 0 {
		sel := b[0]
		b = b[1:]
		var f hpack.HeaderField
		if sel < 0x80 {
			f.Name = fuzzNames[int(sel)%len(fuzzNames)]
		} else {
			f.Name = take(int(sel & 0x7f))
		}
		if len(b) > 0 {
			n := int(b[0])
			b = b[1:]
			f.Value = take(n)
		}
		fs = append(fs, f)
	}
	return fs
}

// encodeFields is decodeFields' inverse, for seeds.
func encodeFields(pairs ...string) []byte {
	var b []byte
	for i := 0; i+1 < len(pairs); i += 2 {
		name, value := pairs[i], pairs[i+1]
		idx := -1
		for j, n := range fuzzNames {
			if n == name {
				idx = j
			}
		}
		if idx >= 0 {
			b = append(b, byte(idx))
		} else {
			b = append(b, 0x80|byte(len(name)))
			b = append(b, name...)
		}
		b = append(b, byte(len(value)))
		b = append(b, value...)
	}
	return b
}

// fuzzHandler answers 103 at once (so the client knows the handler runs),
// then with dumpHandler.
func fuzzHandler(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusEarlyHints)
	dumpHandler(w, r)
}

// fuzzRequest sends fields as stream 1 (END_STREAM on the HEADERS if
// endStream; else body as DATA and, if any, trailer fields) to addr and
// returns the outcome: the 1xx statuses, and the status and body, RST
// code, GOAWAY code, or closed.
//
// Like a real client it sends no more once the server has answered or
// reset the stream, and it sends the body only once the handler runs
// (its 103 came) and each further frame after a PING round trip: a
// server may answer a request before reading its body (400, 431), and
// which comes first, that answer or the server's answer to the next
// frame, would otherwise be a race.
func fuzzRequest(t *testing.T, addr string, fields []hpack.HeaderField, endStream bool, body []byte, trailer []hpack.HeaderField) string {
	rc := dialHandshake(t, addr)
	defer func() {
		// Reset rather than close, leaving no TIME_WAIT behind: fuzzing
		// opens thousands of connections a second.
		rc.c.(*net.TCPConn).SetLinger(0)
		rc.c.Close()
	}()
	rc.timeout = 2 * time.Second
	var steps []func()
	if !endStream && (len(body) > 0 || len(trailer) == 0) {
		steps = append(steps, func() { rc.writeData(1, len(trailer) == 0, body) })
	}
	if !endStream && len(trailer) > 0 {
		steps = append(steps, func() { rc.writeHeaders(1, true, trailer) })
	}
	rc.writeHeaders(1, endStream, fields)
	st := rc.stream(1)
	rc.waitFor(func() bool { return slices.Contains(st.informational, "103") || rc.outcome(1) != "" })
	for i, step := range steps {
		if i > 0 && !rc.ping([8]byte{'f', 'u', 'z', 'z'}) || rc.outcome(1) != "" {
			break
		}
		step()
	}
	o := rc.wait(1)
	if strings.HasPrefix(o, "status ") {
		o += "\n" + rc.body(1)
	}
	return fmt.Sprintf("1xx %v, %s", st.informational, o)
}

// FuzzRequestAsNetHTTP2 sends the same request (any header fields, with
// or without a body and trailers) to every server kind, whose handler
// answers with the request as it saw it (dumpHandler): the outcomes must
// be equal. So whatever net/http's HTTP/2 server accepts, h2server
// accepts and reads the same; what net/http refuses, it refuses alike.
func FuzzRequestAsNetHTTP2(f *testing.F) {
	std := []string{":method", "GET", ":scheme", "http", ":authority", "example.com", ":path", "/a?b=c"}
	postHdr := []string{":method", "POST", ":scheme", "http", ":authority", "example.com", ":path", "/p"}
	with := func(base []string, extra ...string) []byte {
		return encodeFields(append(append([]string{}, base...), extra...)...)
	}
	f.Add(with(std, "x-a", "1"), true, []byte(nil), []byte(nil))
	f.Add(with(postHdr, "content-length", "5", "content-type", "text/plain"), false, []byte("hello"), []byte(nil))
	f.Add(with(postHdr, "trailer", "x-t"), false, []byte("abc"), encodeFields("x-t", "1"))
	f.Add(with(postHdr), false, []byte(nil), []byte(nil))
	f.Add(with(std, "connection", "close"), true, []byte(nil), []byte(nil))
	f.Add(with(std, "X-Upper", "1"), true, []byte(nil), []byte(nil))
	f.Add(with(std, "te", "trailers", "cookie", "a=1", "cookie", "b=2", "host", "h"), true, []byte(nil), []byte(nil))
	f.Add(encodeFields(":method", "CONNECT", ":authority", "a:443"), true, []byte(nil), []byte(nil))
	f.Add(encodeFields(":method", "GET", ":scheme", "http", ":authority", "a"), true, []byte(nil), []byte(nil))
	f.Add(with(postHdr, "content-length", "5"), false, []byte("abc"), []byte(nil))

	servers := map[string]*testServer{}
	for _, kind := range kinds {
		servers[kind] = startServer(f, kind, http.HandlerFunc(fuzzHandler), config{})
	}
	f.Fuzz(func(t *testing.T, hdr []byte, endStream bool, body, trailer []byte) {
		if len(hdr) > 4096 || len(body) > 4096 || len(trailer) > 1024 {
			return
		}
		fields, tr := decodeFields(hdr), decodeFields(trailer)
		want := fuzzRequest(t, servers[kinds[0]].Addr, fields, endStream, body, tr)
		for _, kind := range kinds[1:] {
			if got := fuzzRequest(t, servers[kind].Addr, fields, endStream, body, tr); got != want {
				t.Errorf("fields %q endStream %v body %q trailers %q:\n%s: %s\n%s: %s",
					fields, endStream, body, tr, kinds[0], want, kind, got)
			}
		}
	})
}
