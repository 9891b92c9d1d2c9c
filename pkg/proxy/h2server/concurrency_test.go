package h2server_test

import (
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// holdHandler answers once release is closed (or after 10 s).
func holdHandler(release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "released")
	}
}

// With MaxConcurrentStreams 4, a fifth open stream is refused: before
// the client has ACKed the server's SETTINGS with REFUSED_STREAM (it may
// not know the limit yet), after with PROTOCOL_ERROR; the four others
// complete.
func TestMaxConcurrentStreams(t *testing.T) {
	cfg := config{MaxConcurrentStreams: 4}
	for _, c := range []struct {
		name  string
		acked bool
		want  string
	}{
		{"before the SETTINGS ACK", false, "RST REFUSED_STREAM"},
		{"after the SETTINGS ACK", true, "RST PROTOCOL_ERROR"},
	} {
		t.Run(c.name, func(t *testing.T) {
			forKinds(t, func(t *testing.T, kind string) {
				release := make(chan struct{})
				ts := startServer(t, kind, holdHandler(release), cfg)
				var rc *rawConn
				if c.acked {
					rc = dialHandshake(t, ts.Addr)
					if got := rc.serverSettings[http2.SettingMaxConcurrentStreams]; got != 4 {
						t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want 4", got)
					}
				} else {
					rc = dialRaw(t, ts.Addr)
				}
				for id := uint32(1); id <= 9; id += 2 {
					rc.writeHeaders(id, true, get("/"))
				}
				if o := rc.wait(9); o != c.want {
					t.Errorf("fifth stream: %q, want %q; frames:\n  %s", o, c.want, rc.dump())
				}
				close(release)
				for id := uint32(1); id <= 7; id += 2 {
					if o := rc.wait(id); o != "status 200" || rc.body(id) != "released" {
						t.Errorf("stream %d: %q %q; frames:\n  %s", id, o, rc.body(id), rc.dump())
					}
				}
			})
		})
	}
}

// A client's RST_STREAM cancels the handler's context, and its body's
// Read then ends with an error.
func TestClientResetCancelsHandler(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		started := make(chan struct{})
		type result struct{ ctxErr, bodyErr error }
		done := make(chan result, 1)
		ts := startServer(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(started)
			var res result
			select {
			case <-r.Context().Done():
				res.ctxErr = r.Context().Err()
			case <-time.After(5 * time.Second):
			}
			_, res.bodyErr = io.ReadAll(r.Body)
			done <- res
		}), config{})
		rc := dialHandshake(t, ts.Addr)
		rc.writeHeaders(1, false, post("/"))
		rc.writeData(1, false, []byte("abc"))
		within(t, 3*time.Second, started, "the handler to start")
		rc.writeRST(1, http2.ErrCodeCancel)
		res := within(t, 3*time.Second, done, "the handler to see the reset")
		if res.ctxErr == nil {
			t.Error("the handler's context was not canceled")
		}
		if res.bodyErr == nil {
			t.Error("reading the reset request's body ended without an error")
		}
	})
}

// Rapid reset (CVE-2023-44487): a client opens and at once resets stream
// after stream, against a handler that ignores its context for 1 s. The
// handlers still running count against the stream limit, so only a
// bounded number run at once, and the client is sent GOAWAY
// ENHANCE_YOUR_CALM.
func TestRapidReset(t *testing.T) {
	const maxStreams = 4
	cfg := config{MaxConcurrentStreams: maxStreams}
	forKinds(t, func(t *testing.T, kind string) {
		var running, peak, started atomic.Int32
		ts := startServer(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			started.Add(1)
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Second)
			running.Add(-1)
		}), cfg)
		rc := dialHandshake(t, ts.Addr)
		go func() {
			for i := range 500 {
				id := uint32(2*i + 1)
				if rc.writeHeaders(id, true, get("/")) != nil || rc.writeRST(id, http2.ErrCodeCancel) != nil {
					return
				}
			}
		}()
		if !rc.waitFor(func() bool { return rc.goAway != nil }) {
			t.Fatalf("no GOAWAY: %v (%d handlers started)", rc.readErr, started.Load())
		}
		if rc.goAway.Code != http2.ErrCodeEnhanceYourCalm {
			t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", rc.goAway.Code)
		}
		// Wait out the handlers that were started.
		deadline := time.Now().Add(5 * time.Second)
		for running.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if p := peak.Load(); p > 4*maxStreams+maxStreams {
			t.Errorf("%d handlers ran at once, want at most %d", p, 4*maxStreams+maxStreams)
		}
		t.Logf("peak %d handlers at once, %d started, GOAWAY last stream %d", peak.Load(), started.Load(), rc.goAway.LastStreamID)
	})
}

// panicHandler panics (or aborts) as its path says.
func panicHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	switch r.URL.Path {
	case "/panic":
		panic("boom")
	case "/abort":
		panic(http.ErrAbortHandler)
	case "/panic-after-flush":
		w.WriteHeader(200)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic("boom")
	case "/abort-after-write":
		io.WriteString(w, "partial")
		panic(http.ErrAbortHandler)
	}
	io.WriteString(w, "ok")
}

// A handler's panic (http.ErrAbortHandler too) resets its stream, before
// or after its headers went out, and the connection serves on.
func TestHandlerPanics(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(panicHandler), config{})
		rc := dialHandshake(t, ts.Addr)
		for i, c := range []struct{ path, want string }{
			{"/panic", "RST INTERNAL_ERROR"},
			{"/ok", "status 200"},
			{"/abort", "RST INTERNAL_ERROR"},
			{"/panic-after-flush", "RST INTERNAL_ERROR"},
			{"/abort-after-write", "RST INTERNAL_ERROR"},
			{"/ok", "status 200"},
		} {
			id := uint32(2*i + 1)
			rc.writeHeaders(id, true, get(c.path))
			if o := rc.wait(id); o != c.want {
				t.Errorf("%s: %q, want %q; frames:\n  %s", c.path, o, c.want, rc.dump())
			}
		}
		if st := rc.streams[7]; st.status != "200" || st.body.String() != "partial" {
			t.Errorf("/panic-after-flush: status %q body %q before the reset", st.status, st.body.String())
		}
	})
}
