package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
)

// TestMetricsAddress: --metrics-address serves the standard metrics at
// /stats/prometheus over a real socket, and nothing else.
func TestMetricsAddress(t *testing.T) {
	m, err := istiometrics.New(istiometrics.Options{Self: model.Proxy{Type: model.Sidecar, Name: "sleep", Namespace: "default"}})
	if err != nil {
		t.Fatal(err)
	}
	m.RecordHTTP(&istiometrics.HTTPRequest{Info: &httpfilter.RequestInfo{Status: 200,
		Cluster: "outbound|80||web.default.svc.cluster.local"}})
	addr, stop, err := serveMetrics("127.0.0.1:0", m)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `istio_requests_total{`) ||
		!strings.Contains(string(body), `destination_service="web.default.svc.cluster.local"`) {
		t.Fatalf("/stats/prometheus: %s\n%s", resp.Status, body)
	}
	if resp, err := http.Get("http://" + addr + "/stats"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/stats on the metrics address: %v %v", resp, err)
	}
}
