package upstream

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"
)

// TestPipeHost: a host at PipeAddress(path) is reached over the unix
// socket, for HTTP requests (whose URL host it is) and for raw dials (TCP
// proxying), with the request's Host header left as the client sent it.
func TestPipeHost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "over unix, host "+r.Host)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	tr := NewTransport(TransportOptions{ConnectTimeout: time.Second}, nil)
	host := &Host{Address: PipeAddress(path)}
	tr.SetHosts([]*Host{host})
	req := &http.Request{Method: "GET", URL: &url.URL{Scheme: "http", Host: PipeAddress(path), Path: "/"},
		Host: "reviews:9080", Header: http.Header{}}
	resp, err := tr.RoundTrip(req, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "over unix, host reviews:9080" {
		t.Fatalf("got %q", b)
	}
	if n := host.CxTotal.Load(); n != 1 {
		t.Errorf("the pipe host counted %d connections, want 1", n)
	}

	c, err := tr.Dial(context.Background(), PipeAddress(path))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: raw\r\nConnection: close\r\n\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("raw dial: %q %v", line, err)
	}
	for _, a := range []string{"127.0.0.1:80", "[::1]:80", "example.com:443"} {
		if _, ok := pipePath(a); ok {
			t.Errorf("%s read as a pipe", a)
		}
	}
}

// TestPipeHostAdmitted: a cluster's request to a unix socket host gets its
// pooled connection through Admit.
func TestPipeHostAdmitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c := poolCluster(t, DefaultThresholds(), TransportOptions{}, PipeAddress(path))
	if body, err := send(context.Background(), c, c.Hosts[0]); err != nil || body != "ok" {
		t.Fatalf("got %q, %v", body, err)
	}
	if c.Hosts[0].CxActive.Load() != 1 {
		t.Errorf("host cx_active %d, want 1", c.Hosts[0].CxActive.Load())
	}
}
