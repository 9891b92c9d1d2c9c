package conformance

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

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// The tracing backends of istio-telemetry cases (backends.yaml
// `collector:`): a Zipkin v2 collector (POST /api/v2/spans, a JSON list of
// spans) standing in for openzipkin/zipkin-slim, and a sink that only
// accepts connections (the OpenTelemetry collector, whose export is not
// inspected).

// zipkinSpan is one span of Zipkin's v2 JSON model.
type zipkinSpan struct {
	TraceID       string            `json:"traceId"`
	ID            string            `json:"id"`
	ParentID      string            `json:"parentId"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind"`
	Timestamp     int64             `json:"timestamp"`
	Duration      int64             `json:"duration"`
	LocalEndpoint *zipkinEndpoint   `json:"localEndpoint"`
	Tags          map[string]string `json:"tags"`
	// received is when the collector got it.
	received time.Time
}

type zipkinEndpoint struct {
	ServiceName string `json:"serviceName"`
	IPv4        string `json:"ipv4"`
	IPv6        string `json:"ipv6"`
	Port        int    `json:"port"`
}

// proxyID tells the proxies of a trace apart: the span's node_id tag,
// else its local endpoint.
func (s *zipkinSpan) proxyID() string {
	if id := s.Tags["node_id"]; id != "" {
		return id
	}
	if e := s.LocalEndpoint; e != nil {
		return e.ServiceName + "@" + e.IPv4 + e.IPv6 + ":" + strconv.Itoa(e.Port)
	}
	return ""
}

func (s *zipkinSpan) serviceName() string {
	if s.LocalEndpoint == nil {
		return ""
	}
	return s.LocalEndpoint.ServiceName
}

// zipkinCollector keeps the spans posted to it (at most maxSpans, the
// oldest dropped).
type zipkinCollector struct {
	mu     sync.Mutex
	spans  []*zipkinSpan
	errors []string
}

const maxCollectorSpans = 100000

// startZipkinCollector serves Zipkin's span API on addr until the test ends.
func startZipkinCollector(t *testing.T, addr string) *zipkinCollector {
	t.Helper()
	c := &zipkinCollector{}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("zipkin collector: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/spans", c.post)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return c
}

func (c *zipkinCollector) post(w http.ResponseWriter, r *http.Request) {
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
	var spans []*zipkinSpan
	if err := json.NewDecoder(body).Decode(&spans); err != nil {
		c.fail(w, "decoding spans: "+err.Error())
		return
	}
	now := time.Now()
	c.mu.Lock()
	for _, s := range spans {
		s.received = now
		c.spans = append(c.spans, s)
	}
	if n := len(c.spans) - maxCollectorSpans; n > 0 {
		c.spans = append([]*zipkinSpan(nil), c.spans[n:]...)
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (c *zipkinCollector) fail(w http.ResponseWriter, msg string) {
	c.mu.Lock()
	if len(c.errors) < 20 {
		c.errors = append(c.errors, msg)
	}
	c.mu.Unlock()
	http.Error(w, msg, http.StatusBadRequest)
}

// since returns the spans received at or after from, and the posts the
// collector could not read.
func (c *zipkinCollector) since(from time.Time) ([]*zipkinSpan, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*zipkinSpan
	for _, s := range c.spans {
		if !s.received.Before(from) {
			out = append(out, s)
		}
	}
	return out, append([]string(nil), c.errors...)
}

// startSink accepts connections on addr and reads until the peer closes,
// answering nothing.
func startSink(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("collector sink: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				io.Copy(io.Discard, conn) //nolint:errcheck // a sink
			}()
		}
	}()
}

// startCollector runs the collector a backends.yaml workload stands for
// on its pod address and container ports, and returns the address its
// first port serves on (the workload's app address).
func (e *istioEnv) startCollector(t *testing.T, kind, ip string, ports []int) (string, error) {
	if len(ports) == 0 {
		return "", fmt.Errorf("collector %s: the workload names no container port", kind)
	}
	switch kind {
	case "zipkin":
		addr := net.JoinHostPort(ip, strconv.Itoa(ports[0]))
		e.collectors = append(e.collectors, startZipkinCollector(t, addr))
		return addr, nil
	case "sink":
		for _, p := range ports {
			startSink(t, net.JoinHostPort(ip, strconv.Itoa(p)))
		}
		return net.JoinHostPort(ip, strconv.Itoa(ports[0])), nil
	}
	return "", fmt.Errorf("collector %q: this runner knows zipkin and sink", kind)
}

// collectorOptions starts the collector workload w stands for and points
// its WorkloadOptions at it instead of an echo.
func (e *istioEnv) collectorOptions(t *testing.T, o *testenv.WorkloadOptions, w *BackendWorkload) {
	ports := w.ContainerPorts
	if len(ports) == 0 && w.ContainerPort != 0 {
		ports = []int{w.ContainerPort}
	}
	ip := o.IP
	if ip == "" {
		t.Fatalf("collector workload %s: only cases whose pods have addresses of their own run collectors", w.Name)
	}
	addr, err := e.startCollector(t, w.Collector, ip, ports)
	if err != nil {
		t.Fatal(err)
	}
	o.AppAddress = addr
	for i := range o.Ports {
		if i+1 < len(ports) {
			o.Ports[i].AppAddress = net.JoinHostPort(ip, strconv.Itoa(ports[i+1]))
		}
	}
}
