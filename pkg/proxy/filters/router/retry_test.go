package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// TestBackoffBounds checks Envoy's fully jittered exponential back-off:
// the n-th retry waits in [0, min(base*2^(n-1), max)), and the whole
// range is used.
func TestBackoffBounds(t *testing.T) {
	cases := []struct {
		base, max time.Duration
		ceil      []time.Duration // per retry number, from 1
	}{
		{25 * time.Millisecond, 250 * time.Millisecond, []time.Duration{25, 50, 100, 200, 250, 250, 250}},
		{100 * time.Millisecond, 150 * time.Millisecond, []time.Duration{100, 150, 150}},
		{time.Second, 10 * time.Second, []time.Duration{1000, 2000, 4000, 8000, 10000, 10000}},
	}
	for _, tc := range cases {
		for i, c := range tc.ceil {
			ceil := c * time.Millisecond
			n := i + 1
			var hi time.Duration
			for range 5000 {
				d := backoff(n, tc.base, tc.max, rand.Uint64())
				if d < 0 || d >= ceil {
					t.Fatalf("base %v max %v retry %d: back-off %v outside [0, %v)", tc.base, tc.max, n, d, ceil)
				}
				hi = max(hi, d)
			}
			// With 5000 uniform samples the largest is below 90% of the
			// range with probability 0.9^5000, i.e. never.
			if hi < ceil*9/10 {
				t.Errorf("base %v max %v retry %d: largest back-off %v of 5000 is far below the ceiling %v: not fully jittered", tc.base, tc.max, n, hi, ceil)
			}
		}
	}
	if d := backoff(3, 0, 0, 12345); d != 0 {
		t.Errorf("zero interval: back-off %v, want 0", d)
	}
}

// TestRetriableFailure is Envoy's wouldRetryFromReset for each condition.
func TestRetriableFailure(t *testing.T) {
	all := []failure{failConnect, failReset, failStreamReset, failRefused, failPerTry, failTimeout, failNoHost, failPolicy, failClient}
	cases := []struct {
		on    string
		retry []failure
	}{
		{"5xx", []failure{failConnect, failReset, failStreamReset, failRefused, failPerTry}},
		{"gateway-error", []failure{failConnect, failReset, failStreamReset, failRefused, failPerTry}},
		{"reset", []failure{failConnect, failReset, failStreamReset, failRefused, failPerTry}},
		{"connect-failure", []failure{failConnect}},
		{"reset-before-request", []failure{failConnect}},
		{"refused-stream", []failure{failRefused}},
		{"retriable-4xx,retriable-status-codes,unavailable,cancelled", nil},
		{"connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", []failure{failConnect, failRefused}},
	}
	for _, tc := range cases {
		on, err := ParseRetryOn(tc.on)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range all {
			want := false
			for _, r := range tc.retry {
				want = want || r == f
			}
			if got := retriableFailure(on, f); got != want {
				t.Errorf("retry_on %q, failure %v (%s): retried %v, want %v", tc.on, f, f.flag(), got, want)
			}
		}
	}
}

func TestClassify(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cases := []struct {
		name        string
		err         error
		down, route context.Context
		perTry      bool
		want        failure
		flag        Flags
	}{
		{"client gone wins", context.Canceled, gone, gone, true, failClient, FlagDC},
		{"route timeout", context.DeadlineExceeded, live, gone, true, failTimeout, FlagUT},
		{"per-try timeout", context.Canceled, live, live, true, failPerTry, FlagUT},
		{"no host", errNoHost, live, live, false, failNoHost, FlagUH},
		{"circuit breaker", fmt.Errorf("x: %w", &upstream.OverflowError{Limit: "max_requests"}), live, live, false, failPolicy, FlagUO},
		{"policy error", overflowError("max_pending_requests"), live, live, false, failPolicy, FlagUO},
		{"connect", dialErr, live, live, false, failConnect, FlagUF},
		{"refused stream", errors.New("http2: stream error: stream ID 3; REFUSED_STREAM"), live, live, false, failRefused, FlagUR},
		{"stream reset", errors.New("stream error: stream ID 3; INTERNAL_ERROR"), live, live, false, failStreamReset, FlagUR},
		{"connection closed", io.ErrUnexpectedEOF, live, live, false, failReset, FlagUC},
	}
	for _, tc := range cases {
		f, flag := classify(tc.err, tc.down, tc.route, tc.perTry)
		if f != tc.want || flag != tc.flag {
			t.Errorf("%s: got %v %s, want %v %s", tc.name, f, flag, tc.want, tc.flag)
		}
	}
}

func TestShadowHost(t *testing.T) {
	for in, want := range map[string]string{
		"web":                     "web-shadow",
		"web:8080":                "web-shadow:8080",
		"web.default.svc:80":      "web.default.svc-shadow:80",
		"10.0.0.1":                "10.0.0.1-shadow",
		"10.0.0.1:9080":           "10.0.0.1-shadow:9080",
		"[::1]:80":                "[::1]-shadow:80",
		"[::1]":                   "[::1]-shadow",
		"::1":                     "::1-shadow",
		"reviews.example.com:443": "reviews.example.com-shadow:443",
	} {
		if got := shadowHost(in); got != want {
			t.Errorf("shadowHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReplayBody: a retry sees the whole body, read once from the client;
// an abandoned attempt's reader is cut off; a body over the limit cannot
// be replayed.
func TestReplayBody(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 1000) // 10 kB
	b := newReplayBody(iotest.HalfReader(bytes.NewReader(payload)), 1<<20, int64(len(payload)))
	first := b.reader()
	part := make([]byte, 3000)
	if _, err := io.ReadFull(first, part); err != nil {
		t.Fatal(err)
	}
	second := b.reader() // a retry after the first attempt read 3000 bytes
	if _, err := first.Read(part); !errors.Is(err, errBodySuperseded) {
		t.Fatalf("the abandoned attempt could still read: %v", err)
	}
	got, err := io.ReadAll(second)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("retry read %d bytes (err %v), want the %d-byte body", len(got), err, len(payload))
	}
	whole, ok := b.complete()
	if !ok || !bytes.Equal(whole, payload) {
		t.Fatalf("complete: ok %v, %d bytes", ok, len(whole))
	}
	third, _ := io.ReadAll(b.reader())
	if !bytes.Equal(third, payload) {
		t.Fatalf("third attempt read %d bytes", len(third))
	}

	big := newReplayBody(bytes.NewReader(payload), 4096, int64(len(payload)))
	r := big.reader()
	if n, _ := io.Copy(io.Discard, r); n != int64(len(payload)) {
		t.Fatalf("over the limit the body must still stream whole: %d bytes", n)
	}
	if big.replayable() {
		t.Fatal("a body over the limit claims to be replayable")
	}
	if _, ok := big.complete(); ok {
		t.Fatal("a body over the limit claims to be complete")
	}
}

// TestReplayBodyConcurrent runs an abandoned reader against the retry's
// reader, as a transport still writing an old attempt's body would (run
// with -race).
func TestReplayBodyConcurrent(t *testing.T) {
	payload := []byte(strings.Repeat("x", 64<<10))
	for range 20 {
		b := newReplayBody(iotest.OneByteReader(bytes.NewReader(payload)), 1<<20, -1)
		old := b.reader()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(io.Discard, old)
		}()
		time.Sleep(time.Millisecond)
		got, err := io.ReadAll(b.reader())
		wg.Wait()
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("retry read %d bytes, err %v", len(got), err)
		}
	}
}

func TestAttemptCountValue(t *testing.T) {
	for _, n := range []int{1, 2, 15, 16, 120} {
		if v := attemptCountValue(n); len(v) != 1 || v[0] != fmt.Sprint(n) {
			t.Errorf("attempt %d: %v", n, v)
		}
	}
}

// TestReplayBodyReleased: a released body's readers (a transport may still
// hold one) read nothing more, even once the pooled body serves another
// request, and the next request's body is its own.
func TestReplayBodyReleased(t *testing.T) {
	first := bytes.Repeat([]byte("a"), 5000)
	b := newReplayBody(bytes.NewReader(first), 1<<20, int64(len(first)))
	stale := b.reader()
	if _, err := io.ReadFull(stale, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	b.release()
	if n, err := stale.Read(make([]byte, 100)); n != 0 || !errors.Is(err, errBodySuperseded) {
		t.Fatalf("a released body's reader read %d bytes (err %v)", n, err)
	}
	for range 10 { // the pool may or may not hand the same body back
		second := bytes.Repeat([]byte("b"), 70<<10)
		nb := newReplayBody(bytes.NewReader(second), 1<<20, -1)
		r := nb.reader()
		if n, err := stale.Read(make([]byte, 100)); n != 0 || !errors.Is(err, errBodySuperseded) {
			t.Fatalf("a stale reader read %d bytes of a later body (err %v)", n, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, second) {
			t.Fatalf("read %d bytes (err %v), want the later %d-byte body", len(got), err, len(second))
		}
		again, _ := io.ReadAll(nb.reader())
		if !bytes.Equal(again, second) {
			t.Fatalf("replay read %d bytes", len(again))
		}
		nb.release()
	}
}

// TestReadSmallBody: a small body is read whole before the first attempt;
// without mirrors into a pooled replayBody whose readers each see it all
// and are cut off once it is released, with mirrors into a slice of its
// own; a client that sends less than its Content-Length is reported.
func TestReadSmallBody(t *testing.T) {
	payload := bytes.Repeat([]byte("abc"), 341) // 1023 bytes
	req := func(body io.Reader, n int64) *http.Request {
		r := httptest.NewRequest("POST", "/", io.NopCloser(iotest.HalfReader(body)))
		r.ContentLength = n
		return r
	}
	body, ok := readSmallBody(req(bytes.NewReader(payload), int64(len(payload))), 0, false)
	if !ok || body.replay == nil || body.whole != nil {
		t.Fatalf("without mirrors: ok %v, replay %v, whole %d bytes; want a replayBody", ok, body.replay != nil, len(body.whole))
	}
	for i := range 2 { // the attempts
		got, err := io.ReadAll(body.reader())
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("attempt %d read %d bytes (err %v), want the %d-byte body", i, len(got), err, len(payload))
		}
	}
	late := body.reader()
	body.replay.release()
	if n, err := late.Read(make([]byte, 10)); n != 0 || err == nil {
		t.Fatalf("a reader held past release read %d bytes (err %v)", n, err)
	}

	body, ok = readSmallBody(req(bytes.NewReader(payload), int64(len(payload))), 0, true)
	if !ok || body.replay != nil || !bytes.Equal(body.whole, payload) {
		t.Fatalf("with mirrors: ok %v, replay %v, whole %d bytes; want the body's own slice", ok, body.replay != nil, len(body.whole))
	}
	for _, mirrors := range []bool{false, true} {
		if _, ok := readSmallBody(req(bytes.NewReader(payload[:100]), int64(len(payload))), 0, mirrors); ok {
			t.Fatalf("mirrors %v: a body shorter than its Content-Length read as whole", mirrors)
		}
	}
	if body, ok := readSmallBody(req(bytes.NewReader(payload), SmallBodyLimit+1), 0, false); !ok || body.replay != nil || body.whole != nil {
		t.Fatal("a body over SmallBodyLimit was read ahead")
	}
}
