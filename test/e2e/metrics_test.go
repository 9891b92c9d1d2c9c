package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestIstioMetrics: a client sidecar calls a workload with auto mTLS, one
// without the tlsMode label (plaintext), a service with no endpoints (503
// UH), a path no route matches (404 NR) and an injected abort (FI). Both proxies' /stats/prometheus,
// parsed with Prometheus' text parser, report each request with Istio's
// labels: reporter=source on the client (destination side filled from the
// server's metadata exchange), reporter=destination on the server (source
// side from the client's), mutual_tls or none, and the proxy-made answers
// with their response flags. The exchange headers reach neither app.
func TestIstioMetrics(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("svc.yaml", testenv.ServiceYAML("httpbin", "default", map[string]string{"app": "httpbin"}, map[string]int{"http": 8000})+
		"---\n"+testenv.ServiceYAML("plain", "default", map[string]string{"app": "plain"}, map[string]int{"http": 8000})+
		"---\n"+testenv.ServiceYAML("empty", "default", map[string]string{"app": "empty"}, map[string]int{"http": 8000})+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin]
  http:
  - match: [{uri: {prefix: /get}}]
    route: [{destination: {host: httpbin}}]
  - match: [{uri: {prefix: /fault}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: httpbin}}]
`)
	srv := m.AddWorkload(testenv.WorkloadOptions{Service: "httpbin", Version: "v1"})
	plain := m.AddWorkload(testenv.WorkloadOptions{Service: "plain", Version: "v1", NoTLSModeLabel: true})
	c := m.AddClient(testenv.ClientOptions{Name: "sleep", Labels: map[string]string{"app": "sleep", "version": "v1"}})

	m.WaitConverged(func() error {
		r, err := c.Get("httpbin:8000", "/get", nil)
		if err != nil {
			return err
		}
		return servedBy(r, "httpbin", "v1")
	}, convergeTimeout)
	for range 3 {
		r, err := c.Get("httpbin:8000", "/get", nil)
		if err != nil || servedBy(r, "httpbin", "v1") != nil {
			t.Fatalf("httpbin: %v %v", r, err)
		}
		for _, h := range []string{"X-Envoy-Peer-Metadata", "X-Envoy-Peer-Metadata-Id"} {
			if r.Echo.Request.Headers.Get(h) != "" || r.Header.Get(h) != "" {
				t.Fatalf("%s reached an app: request %q, response %q", h, r.Echo.Request.Headers.Get(h), r.Header.Get(h))
			}
		}
	}
	m.WaitConverged(func() error {
		r, err := c.Get("plain:8000", "/", nil)
		if err != nil {
			return err
		}
		return servedBy(r, "plain", "v1")
	}, convergeTimeout)
	for _, req := range []struct {
		host, path string
		code       int
	}{{"empty:8000", "/", 503}, {"httpbin:8000", "/nope", 404}, {"httpbin:8000", "/fault", 418}} {
		r, err := c.Get(req.host, req.path, nil)
		if err != nil || r.Status != req.code {
			t.Fatalf("%s%s: want %d, got %v %v", req.host, req.path, req.code, r, err)
		}
	}

	client := scrape(t, c.AdminAddress)
	requireSeries(t, client, "istio_requests_total", 3, map[string]string{
		"reporter": "source", "source_workload": "sleep", "source_app": "sleep", "source_workload_namespace": "default",
		"source_canonical_service": "sleep", "source_canonical_revision": "v1",
		"destination_workload": srv.Name, "destination_app": "httpbin", "destination_version": "v1",
		"destination_service": "httpbin.default.svc.cluster.local", "destination_service_name": "httpbin",
		"destination_service_namespace": "default", "request_protocol": "http", "response_code": "200",
		"response_flags": "-", "connection_security_policy": "unknown",
	})
	requireSeries(t, client, "istio_request_duration_milliseconds", 3, map[string]string{
		"reporter": "source", "destination_service": "httpbin.default.svc.cluster.local", "response_code": "200"})
	requireSeries(t, client, "istio_response_bytes", 3, map[string]string{
		"reporter": "source", "destination_service": "httpbin.default.svc.cluster.local", "response_code": "200"})
	requireSeries(t, client, "istio_requests_total", 1, map[string]string{
		"reporter": "source", "destination_service": "empty.default.svc.cluster.local", "response_code": "503",
		"response_flags": "UH", "destination_workload": "unknown"})
	requireSeries(t, client, "istio_requests_total", 1, map[string]string{
		"reporter": "source", "response_code": "404", "response_flags": "NR"})
	requireSeries(t, client, "istio_requests_total", 1, map[string]string{
		"reporter": "source", "destination_service": "httpbin.default.svc.cluster.local", "response_code": "418",
		"response_flags": "FI"})

	server := scrape(t, srv.AdminAddress)
	requireSeries(t, server, "istio_requests_total", 3, map[string]string{
		"reporter": "destination", "source_workload": "sleep", "source_app": "sleep", "source_version": "v1",
		"source_principal":     "spiffe://cluster.local/ns/default/sa/default",
		"destination_workload": srv.Name, "destination_app": "httpbin",
		"destination_principal": "spiffe://cluster.local/ns/default/sa/default",
		"destination_service":   "httpbin.default.svc.cluster.local", "response_code": "200",
		"connection_security_policy": "mutual_tls",
	})
	plainServer := scrape(t, plain.AdminAddress)
	requireSeries(t, plainServer, "istio_requests_total", 1, map[string]string{
		"reporter": "destination", "source_workload": "sleep", "destination_workload": plain.Name,
		"destination_service": "plain.default.svc.cluster.local", "connection_security_policy": "none",
		"source_principal": "unknown",
	})
}

// scrape reads a proxy's /stats/prometheus with Prometheus' text parser.
func scrape(t *testing.T, admin string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s/stats/prometheus: %s", admin, resp.Status)
	}
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s/stats/prometheus does not parse: %v", admin, err)
	}
	return fams
}

// requireSeries fails unless family name has a series with the labels of
// want whose count (counter value, histogram sample count) is at least min.
func requireSeries(t *testing.T, fams map[string]*dto.MetricFamily, name string, min float64, want map[string]string) {
	t.Helper()
	if err := hasSeries(fams, name, min, want); err != nil {
		t.Error(err)
	}
}

// hasSeries is requireSeries' check.
func hasSeries(fams map[string]*dto.MetricFamily, name string, min float64, want map[string]string) error {
	var seen []string
	for _, mt := range fams[name].GetMetric() {
		got := map[string]string{}
		for _, lp := range mt.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
			}
		}
		n := mt.GetCounter().GetValue()
		if h := mt.GetHistogram(); h != nil {
			n = float64(h.GetSampleCount())
		}
		if match && n >= min {
			return nil
		}
		seen = append(seen, fmt.Sprintf("%v=%v", got, n))
	}
	return fmt.Errorf("%s: no series with %v and count >= %v; have:\n%v", name, want, min, seen)
}

// TestIstioTCPMetrics: connections through a client sidecar's outbound
// TCP listener to a tcp-echo workload are counted opened and closed, with
// their bytes, by both proxies: reporter=source with the destination
// service from the cluster, reporter=destination with mutual_tls and the
// client's principal.
func TestIstioTCPMetrics(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("tcp-echo.yaml", tcpEchoConfig)
	srv := m.AddWorkload(testenv.WorkloadOptions{Service: "tcp-echo", Version: "v1", PortName: "tcp", TCPPrefix: "one"})
	ip := testenv.LoopbackIP()
	c := m.AddClient(testenv.ClientOptions{Name: "sleep", OutboundTCPIP: ip})
	addr := ip + ":9000"
	m.WaitConverged(func() error { _, err := tcpLine(addr, "probe"); return err }, convergeTimeout)
	for range 3 {
		if _, err := tcpLine(addr, "hello"); err != nil {
			t.Fatal(err)
		}
	}
	svc := "tcp-echo.default.svc.cluster.local"
	source := map[string]string{"reporter": "source", "source_workload": "sleep", "destination_service": svc,
		"destination_service_name": "tcp-echo", "request_protocol": "tcp", "connection_security_policy": "unknown"}
	// The server side names the service from its inbound cluster's
	// metadata, as Istio's stats filter does.
	dest := map[string]string{"reporter": "destination", "destination_workload": srv.Name, "destination_service": svc,
		"destination_service_name": "tcp-echo", "destination_service_namespace": "default",
		"source_principal": "spiffe://cluster.local/ns/default/sa/default", "connection_security_policy": "mutual_tls"}
	m.WaitConverged(func() error {
		cf, sf := scrape(t, c.AdminAddress), scrape(t, srv.AdminAddress)
		for _, chk := range []struct {
			fams map[string]*dto.MetricFamily
			name string
			min  float64
			want map[string]string
		}{
			{cf, "istio_tcp_connections_opened_total", 4, source}, {cf, "istio_tcp_connections_closed_total", 4, source},
			{cf, "istio_tcp_received_bytes_total", float64(4 * len("hello\n")), source},
			{cf, "istio_tcp_sent_bytes_total", float64(4 * len("one hello\n")), source},
			{sf, "istio_tcp_connections_opened_total", 4, dest}, {sf, "istio_tcp_connections_closed_total", 4, dest},
			{sf, "istio_tcp_received_bytes_total", float64(4 * len("hello\n")), dest},
		} {
			if err := hasSeries(chk.fams, chk.name, chk.min, chk.want); err != nil {
				return err
			}
		}
		return nil
	}, convergeTimeout)
}

// TestIstioGatewayMetrics: an ingress gateway reports its requests as
// reporter=source, as Istio's gateways do, with itself as the source and
// the backend's sidecar (through the metadata exchange) as the
// destination; the backend's sidecar reports the gateway as the source.
func TestIstioGatewayMetrics(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("svc.yaml", testenv.ServiceYAML("web", "default", map[string]string{"app": "web"}, map[string]int{"http": 80})+"---\n"+webGatewayYAML)
	srv := m.AddWorkload(testenv.WorkloadOptions{Service: "web", Version: "v2"})
	offset := testenv.FreePort() - 80
	gw := m.AddGateway(testenv.GatewayOptions{Name: "web-gateway", Namespace: "default",
		Labels: map[string]string{"app": "web-gateway"}, PortOffset: offset})
	hc := &http.Client{Timeout: 5 * time.Second}
	m.WaitConverged(func() error {
		req, _ := http.NewRequest("GET", "http://"+gw.Address(80)+"/", nil)
		r, err := testenv.Send(hc, req)
		if err != nil {
			return err
		}
		return servedBy(r, "web", "v2")
	}, convergeTimeout)
	requireSeries(t, scrape(t, gw.AdminAddress), "istio_requests_total", 1, map[string]string{
		"reporter": "source", "source_workload": "web-gateway", "source_app": "web-gateway",
		"destination_workload": srv.Name, "destination_version": "v2",
		"destination_service": "web.default.svc.cluster.local", "response_code": "200"})
	requireSeries(t, scrape(t, srv.AdminAddress), "istio_requests_total", 1, map[string]string{
		"reporter": "destination", "source_workload": "web-gateway", "destination_workload": srv.Name,
		"connection_security_policy": "mutual_tls"})
}
