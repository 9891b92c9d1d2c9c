package dashboard_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/tracestore"
)

// tracingMesh is Istio's zipkin extension provider with a mesh-wide
// Telemetry at 100%, the provider's service the control plane's own HTTP
// address (its collector at /api/v2/spans), as `sluice demo` sets it up.
const tracingMesh = `extensionProviders:
- name: zipkin
  zipkin:
    service: zipkin.istio-system.svc.cluster.local
    port: 9411
`

func tracingConfig(controlHTTP string) string {
	_, port, _ := net.SplitHostPort(controlHTTP)
	p, _ := strconv.Atoi(port)
	return testenv.ServiceYAML("product-service", "default", map[string]string{"app": "product-service"}, map[string]int{"http": 9080}) +
		"---\n" + testenv.ZipkinServiceEntry(p) + `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: zipkin}]
    randomSamplingPercentage: 100
`
}

func getJSONInto(t *testing.T, url string, v any) error {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestTracesFromProxies: two real sidecars report a request's spans to
// the control plane's collector through their zipkin cluster; the
// dashboard lists the trace with both services and nests the server's
// span under the client's, the Zipkin API answers the same trace, and
// (with Chromium) the Traces and trace pages show them.
func TestTracesFromProxies(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{MeshConfigYAML: tracingMesh})
	m.WriteConfig("services.yaml", tracingConfig(m.HTTPAddress))
	m.AddWorkload(testenv.WorkloadOptions{Service: "product-service", Version: "v1"})
	client := m.AddClient(testenv.ClientOptions{Name: "demo-client"})
	m.WaitSynced(30 * time.Second)
	var tid string
	m.WaitConverged(func() error {
		r, err := client.Get("product-service:9080", "/traced", nil)
		if err != nil {
			return err
		}
		if r.Status != 200 || r.Echo == nil {
			return fmt.Errorf("product-service: %v", r)
		}
		tid = r.Echo.Request.Headers.Get("X-B3-Traceid")
		return nil
	}, 30*time.Second)
	if len(tid) != 32 {
		t.Fatalf("the app saw trace id %q, want a 128-bit B3 id", tid)
	}

	var page struct {
		Summary tracestore.Summary         `json:"summary"`
		Spans   []tracestore.WaterfallSpan `json:"spans"`
	}
	err := testenv.Eventually(func() error {
		if err := getJSONInto(t, m.URL("/dashboard/api/trace?id="+tid), &page); err != nil {
			return err
		}
		if len(page.Spans) < 2 {
			return fmt.Errorf("%d spans", len(page.Spans))
		}
		return nil
	}, 15*time.Second)
	if err != nil {
		t.Fatalf("trace %s never reached the collector: %v", tid, err)
	}
	cs, ss := page.Spans[0], page.Spans[1]
	if len(page.Spans) != 2 || cs.Service != "demo-client.default" || cs.Kind != "CLIENT" || cs.Depth != 0 ||
		ss.Service != "product-service.default" || ss.Kind != "SERVER" || ss.Depth != 1 || ss.ParentID != cs.ID || ss.Tags["http.status_code"] != "200" {
		t.Errorf("waterfall of %s: %+v", tid, page.Spans)
	}
	if s := page.Summary; s.Root != cs.Name || s.RootService != "demo-client.default" || s.Spans != 2 || s.Errors != 0 ||
		strings.Join(s.Services, ",") != "demo-client.default,product-service.default" || s.DurationUS < ss.DurationUS {
		t.Errorf("summary %+v", s)
	}
	var list struct {
		Services []string             `json:"services"`
		Traces   []tracestore.Summary `json:"traces"`
	}
	if err := getJSONInto(t, m.URL("/dashboard/api/traces?service=product-service.default"), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range list.Traces {
		found = found || s.TraceID == tid && s.Spans == 2
	}
	if !found || len(list.Services) != 2 {
		t.Errorf("traces of product-service: no 2-span trace %s in %+v (services %v)", tid, list.Traces, list.Services)
	}
	// The same trace through the Zipkin API, as Grafana would read it.
	var zipkin []map[string]any
	if err := getJSONInto(t, m.URL("/api/v2/trace/"+tid), &zipkin); err != nil || len(zipkin) != 2 || zipkin[1]["parentId"] != zipkin[0]["id"] {
		t.Errorf("zipkin /api/v2/trace/%s: %v %v", tid, err, zipkin)
	}
	// Bad ids and bodies on the real control plane: refused with a reason.
	for url, want := range map[string]int{m.URL("/dashboard/api/trace?id=zz"): 400, m.URL("/dashboard/api/trace?id=00000000000000000000000000000abc"): 404,
		m.URL("/api/v2/trace/xyz"): 400, m.URL("/api/v2/traces?limit=0"): 400} {
		if resp, err := http.Get(url); err != nil || resp.StatusCode != want {
			t.Errorf("%s: %v %v, want %d", url, err, resp, want)
		} else {
			resp.Body.Close()
		}
	}
	if resp, err := http.Post(m.URL("/api/v2/spans"), "application/json", strings.NewReader(`{"not":"a list"}`)); err != nil || resp.StatusCode != 400 {
		t.Errorf("a bad post to the control plane's collector: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	if err := m.CheckNoNACK(); err != nil {
		t.Error(err)
	}
	t.Run("chromium", func(t *testing.T) { checkTracePages(t, chromium(t), m, tid, cs, ss) })
}

// checkTracePages checks the DOM the Traces, trace and service pages
// build.
func checkTracePages(t *testing.T, bin string, m *testenv.Mesh, tid string, cs, ss tracestore.WaterfallSpan) {
	list := runChromium(t, bin, m.URL("/dashboard/#/traces/product-service.default"), "--dump-dom")
	for _, want := range []string{`<option value="product-service.default" selected="">`, `<tr data-trace-id="` + tid + `" data-spans="2" data-errors="0">`,
		`href="#/trace/` + tid + `"`, "demo-client.default, product-service.default"} {
		if !strings.Contains(list, want) {
			t.Errorf("traces page: no %q in the DOM:\n%s", want, list)
			break
		}
	}
	tr := runChromium(t, bin, m.URL("/dashboard/#/trace/"+tid+"/"+ss.ID), "--dump-dom")
	for _, want := range []string{`id="trace" data-trace-id="` + tid + `"`,
		`<a class="span-row" data-span-id="` + cs.ID + `" data-parent-id="" data-depth="0"`,
		`<a class="span-row selected" data-span-id="` + ss.ID + `" data-parent-id="` + cs.ID + `" data-depth="1"`,
		`style="padding-left:20px">product-service.default`, `<table id="span-tags">`, "<td>http.status_code</td><td>200</td>", "<td>istio.canonical_service</td><td>product-service</td>"} {
		if !strings.Contains(tr, want) {
			t.Errorf("trace page: no %q in the DOM:\n%s", want, tr)
			break
		}
	}
	if n := strings.Count(tr, `class="span-row`); n != 2 {
		t.Errorf("trace page: %d span rows, want 2", n)
	}
	svc := runChromium(t, bin, m.URL("/dashboard/#/service/product-service.default.svc.cluster.local"), "--dump-dom")
	if !strings.Contains(svc, `<a id="recent-traces" href="#/traces/product-service.default">`) {
		t.Errorf("service page: no link to its traces")
	}
	wl := runChromium(t, bin, m.URL("/dashboard/#/workload/default/demo-client"), "--dump-dom")
	if !strings.Contains(wl, `<a id="recent-traces" href="#/traces/demo-client.default">`) {
		t.Errorf("workload page: no link to its traces")
	}
}
