package istiometrics

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

func newTest(t testing.TB, name string, labels map[string]string) *Metrics {
	t.Helper()
	m, err := New(Options{Self: model.Proxy{Type: model.Sidecar, Name: name, Namespace: "default", Labels: labels,
		ServiceAccount: name, IPs: []string{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// reqTo is a request whose authority is host.
func reqTo(host string) *http.Request {
	r, _ := http.NewRequest("GET", "http://"+host+"/", nil)
	return r
}

// labelsOf finds the one series of family name whose labels include want.
func labelsOf(t *testing.T, m *Metrics, name string, want map[string]string) (map[string]string, *dto.Metric) {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, mt := range f.GetMetric() {
			got := map[string]string{}
			for _, lp := range mt.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			return got, mt
		}
	}
	t.Fatalf("no %s series with %v", name, want)
	return nil, nil
}

// TestExchangeFillsBothSides: the client's metadata, carried in the
// request headers, labels the server's source side, and the server's,
// carried back, labels the client's destination side.
func TestExchangeFillsBothSides(t *testing.T) {
	client := newTest(t, "sleep", map[string]string{"app": "sleep", "version": "v1"})
	server := newTest(t, "httpbin-v1", map[string]string{"app": "httpbin", "version": "v1",
		"service.istio.io/canonical-name": "httpbin-canon"})
	reqHdr := http.Header{}
	client.SetPeerHeaders(reqHdr)
	if got := reqHdr[HeaderPeerMetadataID][0]; !strings.HasPrefix(got, "sidecar~127.0.0.1~sleep.default~") {
		t.Fatalf("peer id %q is not the node ID", got)
	}
	in := &httpfilter.RequestInfo{Status: 200, Start: time.Now(), PeerMetadata: TakePeer(reqHdr)}
	if len(reqHdr) != 0 {
		t.Fatalf("headers left after TakePeer: %v", reqHdr)
	}
	conn := &httpfilter.Conn{TLS: &tls.ConnectionState{}, PeerPrincipal: "spiffe://cluster.local/ns/default/sa/sleep"}
	server.RecordHTTP(&HTTPRequest{Info: in, Conn: conn, Inbound: true, Request: reqTo("httpbin:8000")})
	got, _ := labelsOf(t, server, "istio_requests_total", map[string]string{"reporter": "destination"})
	for k, v := range map[string]string{"source_workload": "sleep", "source_app": "sleep", "source_version": "v1",
		"source_canonical_service": "sleep", "source_principal": "spiffe://cluster.local/ns/default/sa/sleep",
		"destination_workload": "httpbin-v1", "destination_canonical_service": "httpbin-canon",
		"destination_canonical_revision": "v1", "destination_principal": "spiffe://cluster.local/ns/default/sa/httpbin-v1",
		"destination_service": "httpbin.default.svc.cluster.local", "destination_service_name": "httpbin",
		"destination_service_namespace": "default", "connection_security_policy": "mutual_tls",
		"response_code": "200", "response_flags": "-", "request_protocol": "http", "source_cluster": "Kubernetes"} {
		if got[k] != v {
			t.Errorf("destination reporter: %s = %q, want %q", k, got[k], v)
		}
	}

	respHdr := http.Header{}
	server.SetPeerHeaders(respHdr)
	out := &httpfilter.RequestInfo{Status: 503, Flags: httpfilter.FlagUH, Start: time.Now(),
		Cluster: "outbound|8000|v1|httpbin.default.svc.cluster.local", PeerMetadata: TakePeer(respHdr)}
	client.RecordHTTP(&HTTPRequest{Info: out, Request: reqTo("httpbin:8000")})
	got, _ = labelsOf(t, client, "istio_requests_total", map[string]string{"reporter": "source"})
	for k, v := range map[string]string{"source_workload": "sleep", "destination_workload": "httpbin-v1",
		"destination_app": "httpbin", "destination_service": "httpbin.default.svc.cluster.local",
		"connection_security_policy": "unknown", "response_code": "503", "response_flags": "UH"} {
		if got[k] != v {
			t.Errorf("source reporter: %s = %q, want %q", k, got[k], v)
		}
	}
}

// TestPlaintextAndUnknownPeer: no metadata and no mTLS leave the peer
// unknown and the policy none.
func TestPlaintextAndUnknownPeer(t *testing.T) {
	server := newTest(t, "web", map[string]string{"app": "web"})
	server.RecordHTTP(&HTTPRequest{Info: &httpfilter.RequestInfo{Status: 404, Flags: httpfilter.FlagNR},
		Conn: &httpfilter.Conn{}, Inbound: true, Request: reqTo("web.default")})
	got, _ := labelsOf(t, server, "istio_requests_total", map[string]string{"reporter": "destination"})
	for k, v := range map[string]string{"source_workload": "unknown", "connection_security_policy": "none",
		"destination_principal": "unknown", "destination_service": "web.default.svc.cluster.local",
		"response_flags": "NR", "destination_canonical_revision": "latest"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	server.RecordHTTP(&HTTPRequest{Info: &httpfilter.RequestInfo{Status: 200}, Inbound: true, Request: reqTo("web"),
		GRPC: true, GRPCStatus: "14"})
	got, _ = labelsOf(t, server, "istio_requests_total", map[string]string{"request_protocol": "grpc"})
	if got["grpc_response_status"] != "14" || got["destination_service"] != "web.default.svc.cluster.local" {
		t.Errorf("grpc request: %v", got)
	}
	if p := server.peer("not base64!"); p != unknownPeer {
		t.Errorf("garbage metadata gave %+v", p)
	}
}

// TestHistogramsAndTCP: the histograms observe duration and body sizes
// with Envoy's default buckets; TCP connections are counted with their
// bytes.
func TestHistogramsAndTCP(t *testing.T) {
	m := newTest(t, "sleep", nil)
	m.RecordHTTP(&HTTPRequest{Info: &httpfilter.RequestInfo{Status: 200, Start: time.Now().Add(-30 * time.Millisecond),
		BytesReceived: 10, BytesSent: 1024, Cluster: "outbound|80||web.default.svc.cluster.local"}})
	_, d := labelsOf(t, m, "istio_request_duration_milliseconds", map[string]string{"reporter": "source"})
	h := d.GetHistogram()
	if h.GetSampleCount() != 1 || h.GetSampleSum() < 30 || len(h.GetBucket()) != len(DurationBuckets) {
		t.Errorf("duration histogram: count %d sum %v buckets %d", h.GetSampleCount(), h.GetSampleSum(), len(h.GetBucket()))
	}
	_, rb := labelsOf(t, m, "istio_response_bytes", nil)
	if rb.GetHistogram().GetSampleSum() != 1024 {
		t.Errorf("response bytes sum %v", rb.GetHistogram().GetSampleSum())
	}
	ctr := m.OpenTCP(TCPConn{Cluster: "outbound|9000||tcp-echo.default.svc.cluster.local"})
	ctr.received.Add(5)
	ctr.Closed()
	got, mt := labelsOf(t, m, "istio_tcp_connections_opened_total", map[string]string{"reporter": "source"})
	if mt.GetCounter().GetValue() != 1 || got["destination_service"] != "tcp-echo.default.svc.cluster.local" ||
		got["request_protocol"] != "tcp" {
		t.Errorf("tcp opened: %v %v", mt.GetCounter().GetValue(), got)
	}
	if _, ok := got["response_code"]; ok {
		t.Error("tcp metrics carry response_code")
	}
}

// TestRecordHTTPAllocs: a request whose label combination was seen
// before resolves its labels without allocating.
func TestRecordHTTPAllocs(t *testing.T) {
	m := newTest(t, "sleep", map[string]string{"app": "sleep"})
	hdr := http.Header{}
	newTest(t, "web", nil).SetPeerHeaders(hdr)
	info := &httpfilter.RequestInfo{Status: 200, Start: time.Now(), Cluster: "outbound|80||web.default.svc.cluster.local",
		PeerMetadata: hdr[HeaderPeerMetadata][0]}
	r := &HTTPRequest{Info: info, Request: reqTo("web")}
	m.RecordHTTP(r)
	if n := testing.AllocsPerRun(100, func() { m.RecordHTTP(r) }); n != 0 {
		t.Errorf("RecordHTTP allocates %v times per request", n)
	}
}

func BenchmarkRecordHTTP(b *testing.B) {
	m := newTest(b, "sleep", map[string]string{"app": "sleep"})
	info := &httpfilter.RequestInfo{Status: 200, Start: time.Now(), Cluster: "outbound|80||web.default.svc.cluster.local"}
	r := &HTTPRequest{Info: info, Request: reqTo("web")}
	b.ReportAllocs()
	for range b.N {
		m.RecordHTTP(r)
	}
}

// TestDestinationService: the cluster's service metadata names the
// destination service; else an outbound cluster's host; else the
// authority, unless the config disables that fallback (inbound and
// gateway listeners), which leaves it unknown.
func TestDestinationService(t *testing.T) {
	noFallback, err := Compile(&stats.PluginConfig{DisableHostHeaderFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	se := &Service{Host: "api.example.com", Name: "api.example.com", Namespace: "egress"}
	for _, c := range []struct {
		name    string
		r       HTTPRequest
		svc, ns string
	}{
		{"metadata", HTTPRequest{Service: se, Info: &httpfilter.RequestInfo{Cluster: "outbound|443||api.example.com"}}, "api.example.com", "egress"},
		{"outbound cluster", HTTPRequest{Info: &httpfilter.RequestInfo{Cluster: "outbound|80||web.shop.svc.cluster.local"}}, "web.shop.svc.cluster.local", "shop"},
		{"authority", HTTPRequest{Request: reqTo("other:8080"), Info: &httpfilter.RequestInfo{Cluster: "PassthroughCluster"}}, "other", "unknown"},
		{"inbound authority", HTTPRequest{Inbound: true, Request: reqTo("web:8080"), Info: &httpfilter.RequestInfo{Cluster: "inbound|8080||"}}, "web.default.svc.cluster.local", "default"},
		{"no fallback", HTTPRequest{Config: noFallback, Inbound: true, Request: reqTo("web:8080"), Info: &httpfilter.RequestInfo{Cluster: "inbound|8080||"}}, "unknown", "unknown"},
		{"inbound metadata", HTTPRequest{Config: noFallback, Inbound: true, Service: &Service{Host: "web.default.svc.cluster.local", Name: "web", Namespace: "default"},
			Request: reqTo("1.2.3.4:8080"), Info: &httpfilter.RequestInfo{Cluster: "inbound|8080||"}}, "web.default.svc.cluster.local", "default"},
	} {
		m := newTest(t, "web", nil)
		c.r.Info.Status = 200
		m.RecordHTTP(&c.r)
		got, _ := labelsOf(t, m, "istio_requests_total", nil)
		if got["destination_service"] != c.svc || got["destination_service_namespace"] != c.ns {
			t.Errorf("%s: destination_service %q namespace %q, want %q %q", c.name, got["destination_service"],
				got["destination_service_namespace"], c.svc, c.ns)
		}
	}
}

// TestClientSidePrincipals: on reporter=source the upstream TLS
// connection's identities are source_principal (ours) and
// destination_principal (the server's), whose namespace is the
// destination workload's; the policy stays unknown, as Istio's
// istio_stats.cc leaves mutual_tls_ unset for a client sidecar.
// Plaintext keeps both unknown.
func TestClientSidePrincipals(t *testing.T) {
	const me, srv = "spiffe://cluster.local/ns/default/sa/sleep", "spiffe://cluster.local/ns/shop/sa/web"
	m := newTest(t, "sleep", nil)
	m.RecordHTTP(&HTTPRequest{Info: &httpfilter.RequestInfo{Status: 200, Cluster: "outbound|80||web.shop.svc.cluster.local",
		UpstreamLocalPrincipal: me, UpstreamPeerPrincipal: srv}})
	m.RecordHTTP(&HTTPRequest{Info: &httpfilter.RequestInfo{Status: 201, Cluster: "outbound|80||web.shop.svc.cluster.local"}})
	ctr := m.OpenTCP(TCPConn{Cluster: "outbound|9000||db.shop.svc.cluster.local", UpstreamLocalPrincipal: me, UpstreamPeerPrincipal: srv})
	ctr.Closed()
	for _, c := range []struct {
		name, family string
		sel          map[string]string
		want         map[string]string
	}{
		{"mtls http", "istio_requests_total", map[string]string{"response_code": "200"}, map[string]string{"source_principal": me,
			"destination_principal": srv, "destination_workload_namespace": "shop", "connection_security_policy": "unknown"}},
		{"plaintext http", "istio_requests_total", map[string]string{"response_code": "201"}, map[string]string{"source_principal": "unknown",
			"destination_principal": "unknown", "destination_workload_namespace": "unknown", "connection_security_policy": "unknown"}},
		{"mtls tcp", "istio_tcp_connections_closed_total", nil, map[string]string{"source_principal": me,
			"destination_principal": srv, "destination_workload_namespace": "shop", "reporter": "source"}},
	} {
		got, _ := labelsOf(t, m, c.family, c.sel)
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", c.name, k, got[k], v)
			}
		}
	}
	// The principals are part of the key: a seen combination still
	// records without allocating.
	r := &HTTPRequest{Info: &httpfilter.RequestInfo{Status: 200, Cluster: "outbound|80||web.shop.svc.cluster.local",
		UpstreamLocalPrincipal: me, UpstreamPeerPrincipal: srv}}
	if n := testing.AllocsPerRun(100, func() { m.RecordHTTP(r) }); n != 0 {
		t.Errorf("RecordHTTP with principals allocates %v times", n)
	}
}

func TestPrincipalNamespace(t *testing.T) {
	for in, want := range map[string]string{"spiffe://td/ns/shop/sa/web": "shop", "spiffe://td/ns/shop": "shop",
		"spiffe://td/sa/web": "", "spiffe://td/ns//sa/x": "", "": ""} {
		if got, ok := principalNamespace(in); got != want || ok != (want != "") {
			t.Errorf("principalNamespace(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
}
