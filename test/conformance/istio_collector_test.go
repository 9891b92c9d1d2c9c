package conformance

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// The tracing backends of istio-telemetry cases (backends.yaml
// `collector:`): a Zipkin v2 collector (POST /api/v2/spans, a JSON list of
// spans) standing in for openzipkin/zipkin-slim, and a sink that only
// accepts connections (the OpenTelemetry collector, whose export is not
// inspected).

// spanProxy tells the proxies of a trace apart: the span's node_id tag,
// else its local endpoint.
func spanProxy(s *testenv.ZipkinSpan) string {
	if id := s.Tags["node_id"]; id != "" {
		return id
	}
	if e := s.LocalEndpoint; e != nil {
		return e.ServiceName + "@" + e.IPv4 + e.IPv6 + ":" + strconv.Itoa(e.Port)
	}
	return ""
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
		e.collectors = append(e.collectors, testenv.StartZipkin(t, addr))
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
