package h2server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// readFullWithin reads len(buf) bytes from r, failing the test if that
// takes longer than d.
func readFullWithin(t *testing.T, r io.Reader, buf []byte, d time.Duration, what string) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(r, buf)
		errc <- err
	}()
	if err := within(t, d, errc, what); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// duplexEcho answers with its headers first, then echoes each piece of
// the body as it reads it, flushed.
func duplexEcho(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(200)
	w.(http.Flusher).Flush()
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
			w.(http.Flusher).Flush()
		}
		if err != nil {
			return
		}
	}
}

// Each chunk the client sends comes back before it sends the next: the
// request body reaches the handler as it arrives, and the handler's
// flushed writes reach the client while the request is still open.
func TestFullDuplexEcho(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(duplexEcho), config{})
		pr, pw := io.Pipe()
		defer pw.Close()
		req, _ := http.NewRequest("POST", ts.url(config{}, "/"), pr)
		c := client(t, config{})
		resc := make(chan *http.Response, 1)
		go func() {
			res, err := c.Do(req)
			if err != nil {
				t.Error(err)
			}
			resc <- res
		}()
		res := within(t, 5*time.Second, resc, "the response headers")
		if res == nil {
			t.FailNow()
		}
		defer res.Body.Close()
		for i := range 20 {
			chunk := bytes.Repeat([]byte(fmt.Sprintf("chunk %d;", i)), i*100+1)
			go pw.Write(chunk)
			got := make([]byte, len(chunk))
			readFullWithin(t, res.Body, got, 5*time.Second, fmt.Sprintf("echo of chunk %d", i))
			if !bytes.Equal(got, chunk) {
				t.Fatalf("chunk %d: got %q", i, got[:min(len(got), 40)])
			}
		}
		pw.Close()
		rest, err := io.ReadAll(res.Body)
		if err != nil || len(rest) != 0 {
			t.Errorf("after the request's end: %q, %v", rest, err)
		}
	})
}

// A handler writing 10 MiB in 1 KiB writes.
func TestManySmallWrites(t *testing.T) {
	const size = 10 << 20
	want := pattern(size)
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			for i := 0; i < size; i += 1 << 10 {
				if _, err := w.Write(want[i : i+1<<10]); err != nil {
					return
				}
			}
		}), config{})
		res, err := client(t, config{}).Get(ts.url(config{}, "/"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%d bytes (equal %v), err %v", len(got), bytes.Equal(got, want), err)
		}
		if res.ContentLength != -1 {
			t.Errorf("content-length %d for a streamed response", res.ContentLength)
		}
	})
}

// A handler that flushes its headers and writes its body later: the
// client has the headers before the body is written.
func TestFlushHeadersFirst(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		release := make(chan struct{})
		ts := startServer(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("X-Early", "1")
			w.WriteHeader(202)
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
			io.WriteString(w, "late")
		}), config{})
		c := client(t, config{})
		resc := make(chan *http.Response, 1)
		go func() {
			res, err := c.Get(ts.url(config{}, "/"))
			if err != nil {
				t.Error(err)
			}
			resc <- res
		}()
		res := within(t, 3*time.Second, resc, "the flushed headers")
		if res == nil {
			t.FailNow()
		}
		defer res.Body.Close()
		if res.StatusCode != 202 || res.Header.Get("X-Early") != "1" {
			t.Errorf("status %d, header %v", res.StatusCode, res.Header)
		}
		close(release)
		body, err := io.ReadAll(res.Body)
		if err != nil || string(body) != "late" {
			t.Errorf("body %q, %v", body, err)
		}
	})
}
