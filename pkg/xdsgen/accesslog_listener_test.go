package xdsgen_test

import (
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/model"
)

// TestListenerAccessLog: as istiod's setListenerAccessLog, every bound
// listener gets its class's access logs filtered to NR (no filter chain
// found); a Telemetry filter joins NR in an and_filter; nothing without
// an access log, or with disableEnvoyListenerLog; everything valid.
func TestListenerAccessLog(t *testing.T) {
	nrOnly := func(f *accesslogv3.AccessLogFilter) bool {
		flags := f.GetResponseFlagFilter().GetFlags()
		return len(flags) == 1 && flags[0] == "NR"
	}
	gw := model.Proxy{Type: model.Router, Name: "ingress", Namespace: "istio-system",
		Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"127.0.0.1"}, PortOffset: 8000}
	t.Run("mesh access log", func(t *testing.T) {
		for _, c := range []struct {
			file  string
			proxy model.Proxy
		}{{"testdata/sidecar-listeners.yaml", telemetryDB}, {"testdata/gateway.yaml", gw}} {
			res := generate(t, c.file, c.proxy, &meshv1alpha1.MeshConfig{AccessLogFile: "/dev/stdout"})
			n := 0
			for _, l := range res.Listeners {
				if err := l.ValidateAll(); err != nil {
					t.Fatalf("%s: %v", l.Name, err)
				}
				if l.GetInternalListener() != nil {
					if len(l.AccessLog) != 0 {
						t.Errorf("internal listener %s has an access log", l.Name)
					}
					continue
				}
				n++
				if fl := fileLog(t, l.AccessLog); fl.Path != "/dev/stdout" ||
					fl.GetLogFormat().GetTextFormatSource().GetInlineString() != istioTextFormat || !nrOnly(l.AccessLog[0].Filter) {
					t.Errorf("%s: access_log %v", l.Name, l.AccessLog)
				}
			}
			if n == 0 {
				t.Fatalf("%s: no bound listener", c.file)
			}
			// The connection managers' logs stay unfiltered.
			logs, _, _ := accessLogs(t, res)
			if logs[0][0].Filter != nil {
				t.Errorf("%s: the connection manager's access log got a filter: %v", c.file, logs[0][0].Filter)
			}
		}
	})
	t.Run("off", func(t *testing.T) {
		for _, mesh := range []*meshv1alpha1.MeshConfig{nil, {AccessLogFile: "/dev/stdout", DisableEnvoyListenerLog: true}} {
			for _, l := range generate(t, "testdata/sidecar-listeners.yaml", telemetryDB, mesh).Listeners {
				if len(l.AccessLog) != 0 {
					t.Errorf("%v: %s has access_log %v", mesh, l.Name, l.AccessLog)
				}
			}
		}
	})
	t.Run("telemetry filter", func(t *testing.T) {
		tel := `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging: [{providers: [{name: envoy}], filter: {expression: "response.code >= 400"}}]
`
		res := generateYAML(t, withTelemetry(t, "testdata/sidecar-listeners.yaml", tel), telemetryDB, meshWith(t, "{}\n"))
		for _, l := range res.Listeners {
			if l.GetInternalListener() != nil {
				continue
			}
			if len(l.AccessLog) != 1 {
				t.Fatalf("%s: access_log %v", l.Name, l.AccessLog)
			}
			and := l.AccessLog[0].Filter.GetAndFilter().GetFilters()
			if len(and) != 2 || !nrOnly(and[0]) || and[1].GetExtensionFilter() == nil {
				t.Errorf("%s: filter %v, want and(NR, the Telemetry CEL filter)", l.Name, l.AccessLog[0].Filter)
			}
			if err := l.ValidateAll(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
