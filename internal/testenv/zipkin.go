package testenv

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// ZipkinSpan is one span of Zipkin's v2 JSON model, as a collector
// receives it.
type ZipkinSpan struct {
	TraceID       string            `json:"traceId"`
	ID            string            `json:"id"`
	ParentID      string            `json:"parentId"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind"`
	Timestamp     int64             `json:"timestamp"`
	Duration      int64             `json:"duration"`
	LocalEndpoint *ZipkinEndpoint   `json:"localEndpoint"`
	Tags          map[string]string `json:"tags"`
	// Received is when the collector got it.
	Received time.Time `json:"-"`
}

// ZipkinEndpoint is a span's local or remote endpoint.
type ZipkinEndpoint struct {
	ServiceName string `json:"serviceName"`
	IPv4        string `json:"ipv4"`
	IPv6        string `json:"ipv6"`
	Port        int    `json:"port"`
}

// ServiceName is the span's local service name ("" without an endpoint).
func (s *ZipkinSpan) ServiceName() string {
	if s.LocalEndpoint == nil {
		return ""
	}
	return s.LocalEndpoint.ServiceName
}

// ZipkinCollector is a Zipkin v2 collector run by a test, standing in for
// openzipkin/zipkin: it accepts POST /api/v2/spans (a JSON list of spans,
// gzip or not) and keeps the spans (at most maxZipkinSpans, the oldest
// dropped). A post it cannot read is answered 400 and remembered.
type ZipkinCollector struct {
	// Addr is where it listens (host:port), Port its port.
	Addr string
	Port int

	mu     sync.Mutex
	spans  []*ZipkinSpan
	errors []string
	posts  int
}

const maxZipkinSpans = 100000

// StartZipkin serves a collector on addr ("" for a free port on
// 127.0.0.1) until the test ends.
func StartZipkin(t testing.TB, addr string) *ZipkinCollector {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("zipkin collector: %v", err)
	}
	c := &ZipkinCollector{Addr: ln.Addr().String(), Port: ln.Addr().(*net.TCPAddr).Port}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/spans", c.post)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return c
}

func (c *ZipkinCollector) post(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = io.LimitReader(r.Body, 64<<20)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			c.fail(w, "gzip: "+err.Error())
			return
		}
		defer zr.Close()
		body = zr
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		c.fail(w, "Content-Type "+strconv.Quote(ct)+", want application/json")
		return
	}
	var spans []*ZipkinSpan
	if err := json.NewDecoder(body).Decode(&spans); err != nil {
		c.fail(w, "decoding spans: "+err.Error())
		return
	}
	now := time.Now()
	c.mu.Lock()
	c.posts++
	for _, s := range spans {
		s.Received = now
		c.spans = append(c.spans, s)
	}
	if n := len(c.spans) - maxZipkinSpans; n > 0 {
		c.spans = append([]*ZipkinSpan(nil), c.spans[n:]...)
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (c *ZipkinCollector) fail(w http.ResponseWriter, msg string) {
	c.mu.Lock()
	if len(c.errors) < 20 {
		c.errors = append(c.errors, msg)
	}
	c.mu.Unlock()
	http.Error(w, msg, http.StatusBadRequest)
}

// Since returns the spans received at or after from, and the posts the
// collector could not read.
func (c *ZipkinCollector) Since(from time.Time) ([]*ZipkinSpan, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*ZipkinSpan
	for _, s := range c.spans {
		if !s.Received.Before(from) {
			out = append(out, s)
		}
	}
	return out, append([]string(nil), c.errors...)
}

// Trace returns the spans of trace id received so far.
func (c *ZipkinCollector) Trace(id string) []*ZipkinSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*ZipkinSpan
	for _, s := range c.spans {
		if s.TraceID == id {
			out = append(out, s)
		}
	}
	return out
}

// WaitTrace waits until trace id has at least n spans and returns them.
func (c *ZipkinCollector) WaitTrace(t testing.TB, id string, n int) []*ZipkinSpan {
	t.Helper()
	var got []*ZipkinSpan
	err := Eventually(func() error {
		if got = c.Trace(id); len(got) < n {
			return fmt.Errorf("trace %s: %d spans, want %d", id, len(got), n)
		}
		return nil
	}, 15*time.Second)
	if err != nil {
		c.mu.Lock()
		t.Fatalf("%v (posts %d, unreadable %v)", err, c.posts, c.errors)
		c.mu.Unlock()
	}
	return got
}

// Posts is how many posts the collector accepted.
func (c *ZipkinCollector) Posts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.posts
}

// ZipkinServiceEntry is a Zipkin collector on 127.0.0.1:port as the mesh
// sees it: Istio's zipkin Service (samples/addons/extras/zipkin.yaml,
// zipkin.istio-system:9411) as a ServiceEntry, so proxies reach it through
// its outbound cluster like any collector.
func ZipkinServiceEntry(port int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: zipkin, namespace: istio-system}
spec:
  hosts: [zipkin.istio-system.svc.cluster.local]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 9411, name: http-query, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http-query: %d}}]
`, port)
}
