package h2server_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// Many streams at once on one connection, each uploading and getting
// back a body of its own size (0 to 200 KiB) with a trailer: every
// answer is its own request's.
func TestConcurrentStreamsEcho(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Trailer", "X-Len")
			n, _ := io.Copy(w, r.Body)
			w.Header().Set("X-Len", fmt.Sprint(n))
		}), config{})
		c := client(t, config{})
		rng := rand.New(rand.NewPCG(1, 2))
		var wg sync.WaitGroup
		for g := range 40 {
			sizes := []int{rng.IntN(200 << 10), rng.IntN(1 << 10), 0, rng.IntN(64 << 10), rng.IntN(200 << 10)}
			wg.Go(func() {
				for i, n := range sizes {
					body := bytes.Repeat([]byte{byte(g), byte(i)}, n/2)
					res, err := c.Post(ts.url(config{}, fmt.Sprintf("/%d/%d", g, i)), "application/octet-stream", bytes.NewReader(body))
					if err != nil {
						t.Errorf("%d/%d: %v", g, i, err)
						return
					}
					got, err := io.ReadAll(res.Body)
					res.Body.Close()
					if err != nil || !bytes.Equal(got, body) || res.Trailer.Get("X-Len") != fmt.Sprint(len(body)) {
						t.Errorf("%d/%d: %d bytes (equal %v) trailer %v err %v", g, i, len(got), bytes.Equal(got, body), res.Trailer, err)
					}
				}
			})
		}
		wg.Wait()
	})
}

// 8 MiB each way at once on one stream: the server reads the request
// while the client reads the response, flow control both ways.
func TestFullDuplexLarge(t *testing.T) {
	const size = 8 << 20
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(duplexEcho), config{})
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", ts.url(config{}, "/"), pr)
		res, err := client(t, config{}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		go func() {
			src := pattern(size)
			for i := 0; i < size; i += 32 << 10 {
				if _, err := pw.Write(src[i : i+32<<10]); err != nil {
					return
				}
			}
			pw.Close()
		}()
		got := make([]byte, size)
		readFullWithin(t, res.Body, got, 20*time.Second, "the echo")
		if !bytes.Equal(got, pattern(size)) {
			t.Error("the echo differs from what was sent")
		}
	})
}

// A stream the client grants no window stalls alone: a stream it does
// grant, and PING, are still answered.
func TestBlockedStreamDoesNotBlockOthers(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(flowHandler), config{})
		rc := dialHandshake(t, ts.Addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		rc.autoWindow = false
		rc.writeWindowUpdate(0, 1<<20)
		rc.writeHeaders(1, true, get("/get?n=100000"))
		rc.writeHeaders(3, true, get("/get?n=100000"))
		if !rc.waitFor(func() bool { return rc.stream(1).status != "" && rc.stream(3).status != "" }) {
			t.Fatalf("no response headers: %v; frames:\n  %s", rc.readErr, rc.dump())
		}
		rc.writeWindowUpdate(3, 100000)
		if o := rc.wait(3); o != "status 200" || rc.body(3) != string(pattern(100000)) {
			t.Fatalf("the stream with a window: %q, %d bytes; frames:\n  %s", o, len(rc.body(3)), rc.dump())
		}
		if !rc.ping([8]byte{7}) {
			t.Fatalf("no PING ACK while a stream is stalled: %v", rc.readErr)
		}
		if st := rc.streams[1]; st.recvd != 0 || st.ended {
			t.Errorf("the stream without a window: %d bytes, ended %v", st.recvd, st.ended)
		}
		rc.writeWindowUpdate(1, 100000)
		if o := rc.wait(1); o != "status 200" || rc.body(1) != string(pattern(100000)) {
			t.Errorf("the stalled stream once granted: %q, %d bytes", o, len(rc.body(1)))
		}
	})
}

// What http.ResponseController can do with the server's ResponseWriter:
// flush, set read and write deadlines, enable full duplex (all no-ops or
// working in net/http's HTTP/2 server), but not hijack.
func TestResponseController(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		results := make(chan string, 1)
		ts := startServer(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			w.Header().Set("Content-Type", "text/plain")
			var s string
			for _, c := range []struct {
				name string
				f    func() error
			}{
				{"Flush", rc.Flush},
				{"EnableFullDuplex", rc.EnableFullDuplex},
				{"SetReadDeadline", func() error { return rc.SetReadDeadline(time.Now().Add(time.Minute)) }},
				{"SetWriteDeadline", func() error { return rc.SetWriteDeadline(time.Now().Add(time.Minute)) }},
				{"Hijack", func() error {
					_, _, err := rc.Hijack()
					return err
				}},
			} {
				err := c.f()
				s += fmt.Sprintf("%s: nil=%v unsupported=%v\n", c.name, err == nil, errors.Is(err, http.ErrNotSupported))
			}
			results <- s
			io.WriteString(w, "ok")
		}), config{})
		res, err := client(t, config{}).Get(ts.url(config{}, "/"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		want := "Flush: nil=true unsupported=false\n" +
			"EnableFullDuplex: nil=true unsupported=false\n" +
			"SetReadDeadline: nil=true unsupported=false\n" +
			"SetWriteDeadline: nil=true unsupported=false\n" +
			"Hijack: nil=false unsupported=true\n"
		if got := within(t, time.Second, results, "the handler"); got != want {
			t.Errorf("ResponseController:\n%swant\n%s", got, want)
		}
	})
}
