package xdsgen_test

import (
	"os"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// logsByDirection returns the access_log of every connection manager and
// tcp_proxy by the direction of its listener.
func logsByDirection(t *testing.T, res *xdsgen.Resources) map[core.TrafficDirection][][]*accesslogv3.AccessLog {
	t.Helper()
	out := map[core.TrafficDirection][][]*accesslogv3.AccessLog{}
	for _, l := range res.Listeners {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var al []*accesslogv3.AccessLog
				switch f.GetName() {
				case xdsgen.HTTPConnectionManagerFilter:
					var m hcm.HttpConnectionManager
					if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
						t.Fatal(err)
					}
					al = m.AccessLog
				case xdsgen.TCPProxyFilter:
					var tp tcpproxy.TcpProxy
					if err := f.GetTypedConfig().UnmarshalTo(&tp); err != nil {
						t.Fatal(err)
					}
					al = tp.AccessLog
				default:
					continue
				}
				out[l.GetTrafficDirection()] = append(out[l.GetTrafficDirection()], al)
			}
		}
	}
	return out
}

func meshWith(t *testing.T, yaml string) *meshv1alpha1.MeshConfig {
	t.Helper()
	mc, err := meshconfig.Parse([]byte(yaml), "mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func withTelemetry(t *testing.T, file, telemetry string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(data) + "\n---\n" + telemetry
}

var telemetryDB = model.Proxy{Type: model.Sidecar, Name: "db-0", Namespace: "default",
	Labels: map[string]string{"app": "db"}, IPs: []string{"127.0.0.1"}, OutboundAddress: "127.0.0.1:15001",
	Inbound: []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}, {Address: "127.0.0.1:20002", App: "127.0.0.1:30002"}}}

// TestTelemetryAccessLog: access_log from the Telemetry API, as istiod's
// AccessLogBuilder: per listener class, the provider's format, Envoy's CEL
// filter, disabled, and the MeshConfig fallback when no provider applies.
func TestTelemetryAccessLog(t *testing.T) {
	const meshWide = `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging: [{providers: [{name: envoy}]}]
`
	each := func(t *testing.T, logs map[core.TrafficDirection][][]*accesslogv3.AccessLog, dir core.TrafficDirection, check func(al []*accesslogv3.AccessLog)) {
		t.Helper()
		if len(logs[dir]) == 0 {
			t.Fatalf("no %v connection manager or tcp_proxy", dir)
		}
		for _, al := range logs[dir] {
			check(al)
		}
	}
	t.Run("envoy provider mesh-wide, MeshConfig's format", func(t *testing.T) {
		for _, enc := range []string{"TEXT", "JSON"} {
			res := generateYAML(t, withTelemetry(t, "testdata/sidecar-listeners.yaml", meshWide), telemetryDB,
				meshWith(t, "accessLogEncoding: "+enc+"\n"))
			logs := logsByDirection(t, res)
			for _, dir := range []core.TrafficDirection{core.TrafficDirection_INBOUND, core.TrafficDirection_OUTBOUND} {
				each(t, logs, dir, func(al []*accesslogv3.AccessLog) {
					fl := fileLog(t, al)
					if fl.Path != "/dev/stdout" || al[0].Filter != nil {
						t.Errorf("%s: %v", enc, al)
					}
					text := fl.GetLogFormat().GetTextFormatSource().GetInlineString()
					if enc == "TEXT" && text != istioTextFormat || enc == "JSON" && len(fl.GetLogFormat().GetJsonFormat().GetFields()) != 24 {
						t.Errorf("%s format: %v", enc, fl.GetLogFormat())
					}
				})
			}
		}
	})
	t.Run("provider formats and filter", func(t *testing.T) {
		mesh := meshWith(t, `extensionProviders:
- name: text
  envoyFileAccessLog: {path: /tmp/text.log, logFormat: {text: "%RESPONSE_CODE%"}}
- name: labels
  envoyFileAccessLog: {path: /tmp/json.log, logFormat: {labels: {code: "%RESPONSE_CODE%"}}}
`)
		tel := `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: db, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  accessLogging:
  - providers: [{name: text}, {name: labels}]
    filter: {expression: response.code >= 400}
`
		logs := logsByDirection(t, generateYAML(t, withTelemetry(t, "testdata/sidecar-listeners.yaml", tel), telemetryDB, mesh))
		each(t, logs, core.TrafficDirection_OUTBOUND, func(al []*accesslogv3.AccessLog) {
			if len(al) != 2 {
				t.Fatalf("access_log: %v", al)
			}
			// Sorted by provider name: labels, then text.
			j, x := fileLog(t, al[:1]), fileLog(t, al[1:])
			if j.Path != "/tmp/json.log" || j.GetLogFormat().GetJsonFormat().GetFields()["code"].GetStringValue() != "%RESPONSE_CODE%" {
				t.Errorf("labels provider: %v", j)
			}
			if x.Path != "/tmp/text.log" || x.GetLogFormat().GetTextFormatSource().GetInlineString() != "%RESPONSE_CODE%\n" {
				t.Errorf("text provider: %v", x)
			}
			for _, a := range al {
				ext := a.GetFilter().GetExtensionFilter()
				var expr celv3.ExpressionFilter
				if ext.GetName() != xdsgen.CELFilterName || ext.GetTypedConfig().UnmarshalTo(&expr) != nil || expr.Expression != "response.code >= 400" {
					t.Errorf("filter: %v", a.GetFilter())
				}
			}
		})
	})
	t.Run("SERVER mode; client falls back to MeshConfig", func(t *testing.T) {
		tel := `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: server, namespace: default}
spec:
  accessLogging: [{providers: [{name: envoy}], match: {mode: SERVER}}]
`
		logs := logsByDirection(t, generateYAML(t, withTelemetry(t, "testdata/sidecar-listeners.yaml", tel), telemetryDB,
			meshWith(t, "accessLogFile: /tmp/mesh.log\n")))
		each(t, logs, core.TrafficDirection_INBOUND, func(al []*accesslogv3.AccessLog) {
			if fileLog(t, al).Path != "/dev/stdout" {
				t.Errorf("inbound: %v", al)
			}
		})
		// istiod: no provider for the client class, so the legacy
		// accessLogFile applies there (setHTTPAccessLog's len(cfgs) == 0).
		each(t, logs, core.TrafficDirection_OUTBOUND, func(al []*accesslogv3.AccessLog) {
			if fileLog(t, al).Path != "/tmp/mesh.log" {
				t.Errorf("outbound: %v", al)
			}
		})
	})
	t.Run("disabled for the workload, over accessLogFile", func(t *testing.T) {
		tel := meshWide + `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs-off, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  accessLogging: [{disabled: true}]
`
		logs := logsByDirection(t, generateYAML(t, withTelemetry(t, "testdata/sidecar-listeners.yaml", tel), telemetryDB,
			meshWith(t, "accessLogFile: /tmp/mesh.log\n")))
		for dir, all := range logs {
			for _, al := range all {
				if len(al) != 0 {
					t.Errorf("%v: %v", dir, al)
				}
			}
		}
	})
	t.Run("gateway is a client", func(t *testing.T) {
		gw := model.Proxy{Type: model.Router, Name: "ingress", Namespace: "istio-system",
			Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"127.0.0.1"}, PortOffset: 8000}
		for mode, want := range map[string]int{"CLIENT": 1, "SERVER": 0} {
			tel := `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  accessLogging: [{providers: [{name: envoy}], match: {mode: ` + mode + `}}]
`
			logs := logsByDirection(t, generateYAML(t, withTelemetry(t, "testdata/gateway.yaml", tel), gw, meshWith(t, "")))
			each(t, logs, core.TrafficDirection_OUTBOUND, func(al []*accesslogv3.AccessLog) {
				if len(al) != want {
					t.Errorf("mode %s: %v", mode, al)
				}
			})
		}
	})
}
