package h2server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// flowHandler serves /get?n= (n bytes of pattern), /count (how much of
// the body it read, and whether it was pattern) and /hold (reads nothing
// until the request ends).
func flowHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	switch r.URL.Path {
	case "/get":
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(pattern(n))
	case "/count":
		body, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "n=%d ok=%v err=%v", len(body), bytes.Equal(body, pattern(len(body))), err)
	case "/hold":
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}
}

// windowCheck counts the DATA a raw client reads against what it granted,
// failing the test as soon as the server sends past a window.
type windowCheck struct {
	t                          *testing.T
	rc                         *rawConn
	id                         uint32
	streamAllowed, connAllowed int64
}

func newWindowCheck(t *testing.T, rc *rawConn, id uint32, streamInitial int64) *windowCheck {
	w := &windowCheck{t: t, rc: rc, id: id, streamAllowed: streamInitial, connAllowed: 65535}
	rc.autoWindow = false
	rc.onData = func(st *rawStream, n int) {
		if st.id == w.id && st.recvd > w.streamAllowed {
			t.Errorf("stream %d: %d bytes of DATA read, %d granted", st.id, st.recvd, w.streamAllowed)
		}
		if rc.connRecvd > w.connAllowed {
			t.Errorf("connection: %d bytes of DATA read, %d granted", rc.connRecvd, w.connAllowed)
		}
	}
	return w
}

func (w *windowCheck) grantStream(n int64) {
	w.streamAllowed += n
	w.rc.writeWindowUpdate(w.id, uint32(n))
}

func (w *windowCheck) grantConn(n int64) {
	w.connAllowed += n
	w.rc.writeWindowUpdate(0, uint32(n))
}

// waitUsed reads until the server has used the stream window (stream
// true) or the connection's, or the stream has ended.
func (w *windowCheck) waitUsed(stream bool) {
	w.t.Helper()
	st := w.rc.stream(w.id)
	ok := w.rc.waitFor(func() bool {
		if stream {
			return st.ended || st.recvd >= w.streamAllowed
		}
		return st.ended || w.rc.connRecvd >= w.connAllowed
	})
	if !ok {
		w.t.Fatalf("stream %d: %d bytes read, %d granted (connection %d of %d), then %v; frames:\n  %s",
			w.id, st.recvd, w.streamAllowed, w.rc.connRecvd, w.connAllowed, w.rc.readErr, w.rc.dump())
	}
}

func (w *windowCheck) checkBody(n int) {
	w.t.Helper()
	if o := w.rc.outcome(w.id); o != "status 200" {
		w.t.Fatalf("outcome %q", o)
	}
	if got := w.rc.streams[w.id].body.Bytes(); !bytes.Equal(got, pattern(n)) {
		w.t.Errorf("body: %d bytes, want %d of pattern", len(got), n)
	}
}

const flowSize = 100000

// With a stream window of 0, granted 1000 bytes at a time, the server
// sends no more than granted, and the response completes.
func TestFlowControlStreamWindow(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(flowHandler), config{})
		rc := dialHandshake(t, ts.Addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		w := newWindowCheck(t, rc, 1, 0)
		rc.writeHeaders(1, true, get(fmt.Sprint("/get?n=", flowSize)))
		rc.waitFor(func() bool { return rc.stream(1).status != "" })
		for !rc.stream(1).ended {
			if w.connAllowed-rc.connRecvd < 16384 {
				w.grantConn(65535)
			}
			w.grantStream(1000)
			w.waitUsed(true)
		}
		w.checkBody(flowSize)
	})
}

// With a large stream window and the connection's initial 65535 bytes,
// then granted 1000 bytes at a time on the connection, the server sends
// no more than granted.
func TestFlowControlConnWindow(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(flowHandler), config{})
		rc := dialHandshake(t, ts.Addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
		w := newWindowCheck(t, rc, 1, 1<<30)
		rc.writeHeaders(1, true, get(fmt.Sprint("/get?n=", flowSize)))
		w.waitUsed(false)
		for !rc.stream(1).ended {
			w.grantConn(1000)
			w.waitUsed(false)
		}
		w.checkBody(flowSize)
	})
}

// SETTINGS_INITIAL_WINDOW_SIZE changed mid-response moves the stream's
// window by the difference, below zero too (RFC 9113 6.9.2).
func TestInitialWindowSizeChange(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(flowHandler), config{})
		rc := dialHandshake(t, ts.Addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000})
		w := newWindowCheck(t, rc, 1, 1000)
		w.grantConn(1 << 20)
		setInitial := func(from, to int64) {
			w.streamAllowed += to - from
			rc.writeSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(to)})
		}
		rc.writeHeaders(1, true, get(fmt.Sprint("/get?n=", flowSize)))
		w.waitUsed(true) // 1000
		setInitial(1000, 5000)
		w.waitUsed(true)       // 5000
		setInitial(5000, 3000) // the window is -2000
		w.grantStream(2500)    // and now 500
		w.waitUsed(true)       // 5500
		setInitial(3000, 200000)
		w.waitUsed(true)
		w.checkBody(flowSize)
	})
}

// A raw client uploads 3 MiB within the windows the server grants: the
// server must keep granting (WINDOW_UPDATE) as its handler reads.
func TestLargeUploadWindowUpdates(t *testing.T) {
	const size = 3 << 20
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(flowHandler), config{})
		rc := dialHandshake(t, ts.Addr)
		rc.ping([8]byte{1})
		rc.writeHeaders(1, false, post("/count"))
		if !rc.upload(1, pattern(size), true) {
			t.Fatalf("upload: %v; frames:\n  %s", rc.readErr, rc.dump())
		}
		if o := rc.wait(1); o != "status 200" {
			t.Fatalf("outcome %q, frames:\n  %s", o, rc.dump())
		}
		if got, want := rc.body(1), fmt.Sprintf("n=%d ok=true err=<nil>", size); got != want {
			t.Errorf("body %q, want %q", got, want)
		}
	})
}

// A client that sends one byte more than the server's window (stream and
// connection) gets FLOW_CONTROL_ERROR: net/http resets the stream (its
// connection window is checked with the stream's, as a stream error).
func TestFlowControlError(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(flowHandler), config{})
		rc := dialHandshake(t, ts.Addr)
		rc.ping([8]byte{1})
		stream, conn := rc.sendWindows(1, 0)
		rc.writeHeaders(1, false, post("/hold"))
		chunk := make([]byte, 16384)
		for left := min(stream, conn) + 1; left > 0; left -= int64(len(chunk)) {
			if err := rc.writeData(1, false, chunk[:min(left, int64(len(chunk)))]); err != nil {
				break
			}
		}
		if o := rc.wait(1); o != "RST FLOW_CONTROL_ERROR" {
			t.Errorf("outcome %q (windows %d/%d), want RST FLOW_CONTROL_ERROR; frames:\n  %s", o, stream, conn, rc.dump())
		}
	})
}
