package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
	"github.com/sluice-mesh/sluice/pkg/version"
)

// scrape GETs /metrics and parses it as Prometheus does.
func (r *running) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + r.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(prommodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	return fams
}

// value is a counter's or gauge's value, or a histogram's sample count,
// of the series with the given label (name=value), or -1 if absent.
func value(fams map[string]*dto.MetricFamily, name string, label ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	for _, m := range f.Metric {
		if len(label) == 2 && !hasLabel(m, label[0], label[1]) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func hasLabel(m *dto.Metric, name, val string) bool {
	for _, l := range m.Label {
		if l.GetName() == name && l.GetValue() == val {
			return true
		}
	}
	return false
}

func serviceEntry(host string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%s.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.9}]
`, host, host)
}

func tcpServiceEntry(name string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%s.example.com]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.9}]
`, name, name)
}

// want waits until every metric named has its value.
func (r *running) want(t *testing.T, what string, checks map[string]float64, label ...string) {
	t.Helper()
	waitUntil(t, what, func() error {
		fams := r.scrape(t)
		for name, v := range checks {
			if got := value(fams, name, label...); got != v {
				return fmt.Errorf("%s%v = %v, want %v", name, label, got, v)
			}
		}
		return nil
	})
}

// istiod's metrics move where the events happen: a proxy connecting, a
// response sent, a NACK, a config change reaching the proxy, a CSR, a
// rejected resource; all scraped from /metrics and parsed as Prometheus
// does.
func TestControlPlaneMetrics(t *testing.T) {
	dir := t.TempDir()
	r := &running{dir: dir}
	r.write(t, "a.yaml", serviceEntry("a"))
	r.write(t, "bad.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad}\nspec: {hosts: []}\n")
	r = start(t, dir, DebounceOptions{Quiet: 50 * time.Millisecond, MaxDelay: time.Second})

	fams := r.scrape(t)
	if v := value(fams, "pilot_services"); v != 1 {
		t.Errorf("pilot_services = %v, want 1", v)
	}
	if v := value(fams, "sluice_config_errors"); v != 1 {
		t.Errorf("sluice_config_errors = %v, want 1", v)
	}
	for _, name := range []string{"pilot_conflict_inbound_listener", "pilot_conflict_outbound_listener_tcp_over_current_tcp",
		"citadel_server_csr_count", "citadel_server_success_cert_issuance_count"} {
		if v := value(fams, name); v != 0 {
			t.Errorf("%s = %v, want 0", name, v)
		}
	}
	// The per-type series exist before any push or NACK, at zero.
	for _, typ := range []string{"cds", "eds", "lds", "rds"} {
		for _, name := range []string{"pilot_xds_pushes", "pilot_total_xds_rejects"} {
			if v := value(fams, name, "type", typ); v != 0 {
				t.Errorf("%s{type=%q} = %v, want 0", name, typ, v)
			}
		}
	}

	// A proxy connects and is sent CDS.
	a := r.openADS(t, "sidecar~127.0.0.1~w.default~default.svc.cluster.local")
	cds := a.cds(t)
	r.want(t, "the connection and the CDS push", map[string]float64{"pilot_xds": 1})
	r.want(t, "the CDS push", map[string]float64{"pilot_xds_pushes": 1, "pilot_xds_push_time": 1}, "type", "cds")
	r.want(t, "the CDS push's size", map[string]float64{"pilot_xds_config_size_bytes": 1}, "type", resourcev3.ClusterType)

	// It NACKs it.
	if err := a.stream.Send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: cds.Nonce,
		ErrorDetail: &rpcstatus.Status{Message: "cluster x: not supported"}}); err != nil {
		t.Fatal(err)
	}
	r.want(t, "the NACK", map[string]float64{"pilot_total_xds_rejects": 1}, "type", "cds")

	// A config change reaches it: one more CDS push, and its convergence.
	r.write(t, "b.yaml", serviceEntry("b"))
	resp, err := a.stream.Recv()
	if err != nil || resp.TypeUrl != resourcev3.ClusterType || len(resp.Resources) <= len(cds.Resources) {
		t.Fatalf("second CDS: %v %v", resp, err)
	}
	r.want(t, "the change's push", map[string]float64{"pilot_xds_pushes": 2, "pilot_xds_push_time": 2}, "type", "cds")
	r.want(t, "the change's convergence", map[string]float64{"pilot_proxy_convergence_time": 1, "pilot_services": 2})

	// A workload gets a certificate.
	w, err := identity.New(identity.Options{CAAddress: r.xds, TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "default",
		ControlPlane: identity.ControlPlane{Address: r.xds, TokenFile: filepath.Join(r.state, ca.FileBootstrapToken)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	select {
	case <-w.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no certificate")
	}
	r.want(t, "the CSR", map[string]float64{"citadel_server_csr_count": 1, "citadel_server_success_cert_issuance_count": 1})

	// The rejected resource is fixed.
	r.write(t, "bad.yaml", vs("bad", "v1"))
	r.want(t, "the fix", map[string]float64{"sluice_config_errors": 0})

	// A sidecar with two inbound addresses on one port, seeing two TCP
	// services on one port with no VIPs: one conflict of each kind
	// istiod counts, while it is connected.
	r.write(t, "tcp.yaml", tcpServiceEntry("tcp-a")+"---\n"+tcpServiceEntry("tcp-b"))
	r.want(t, "the TCP services", map[string]float64{"pilot_services": 4})
	c := r.openADSNode(t, (&model.Proxy{Type: model.Sidecar, Name: "c", Namespace: "default", IPs: []string{"127.0.0.1"},
		OutboundTCPIP: "127.0.0.1", Inbound: []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"},
			{Address: "127.0.0.2:20001", App: "127.0.0.1:30002"}}}).Node())
	c.cds(t)
	r.want(t, "the conflicts", map[string]float64{"pilot_conflict_inbound_listener": 1,
		"pilot_conflict_outbound_listener_tcp_over_current_tcp": 1})
	// pilot_xds counts proxies by the version they announce: c, a real
	// proxy's node, announces sluice's (ISTIO_VERSION); a announced none.
	r.want(t, "c by its version", map[string]float64{"pilot_xds": 1}, "version", version.Get())
	r.want(t, "a without a version", map[string]float64{"pilot_xds": 1}, "version", "")
	c.close()
	r.want(t, "c gone", map[string]float64{"pilot_xds": 0}, "version", version.Get())

	// The proxies leave.
	a.close()
	r.want(t, "the disconnection", map[string]float64{"pilot_xds": 0}, "version", "")
	r.want(t, "the conflicts' end", map[string]float64{"pilot_conflict_inbound_listener": 0,
		"pilot_conflict_outbound_listener_tcp_over_current_tcp": 0})
}
