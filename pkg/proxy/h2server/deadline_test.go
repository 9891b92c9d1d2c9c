package h2server_test

import (
	"errors"
	"io"
	"net/http"
	"os"
	"testing"
	"time"
)

// A read deadline set through http.ResponseController ends a body read
// that waits for data with os.ErrDeadlineExceeded.
func TestReadDeadline(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		errs := make(chan error, 1)
		ts := startServer(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, err := io.ReadAll(r.Body)
			errs <- err
		}), config{})
		pr, pw := io.Pipe()
		defer pw.Close()
		req, _ := http.NewRequest("POST", ts.url(config{}, "/"), pr)
		go func() {
			if res, err := client(t, config{}).Do(req); err == nil {
				res.Body.Close()
			}
		}()
		pw.Write([]byte("some")) // then nothing more
		if err := within(t, 5*time.Second, errs, "the body read"); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("body read: %v, want os.ErrDeadlineExceeded", err)
		}
	})
}

// A write deadline that passes resets the stream: the client's body read
// fails, and so does the handler's next write.
func TestWriteDeadline(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		errs := make(chan error, 1)
		ts := startServer(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			rc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "first")
			rc.Flush()
			time.Sleep(400 * time.Millisecond)
			_, err := io.WriteString(w, "second")
			if err == nil {
				err = rc.Flush()
			}
			errs <- err
		}), config{})
		res, err := client(t, config{}).Get(ts.url(config{}, "/"))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil {
			t.Errorf("the client read %q to its end; want the stream reset", body)
		}
		if err := within(t, 5*time.Second, errs, "the handler"); err == nil {
			t.Error("the write after the deadline succeeded")
		}
	})
}
