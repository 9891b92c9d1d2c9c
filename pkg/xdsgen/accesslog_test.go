package xdsgen_test

import (
	"path/filepath"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// istioTextFormat is EnvoyTextLogFormat as istio/istio spells it
// (pilot/pkg/model/telemetry_logging.go), written out here so the test
// does not compare the generator with itself.
const istioTextFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%` + "\n"

// accessLogs returns every connection manager's and tcp_proxy's
// access_log in res, and how many of each there were.
func accessLogs(t *testing.T, res *xdsgen.Resources) (logs [][]*accesslogv3.AccessLog, hcms, tcps int) {
	t.Helper()
	for _, l := range res.Listeners {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				switch f.GetName() {
				case xdsgen.HTTPConnectionManagerFilter:
					var m hcm.HttpConnectionManager
					if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
						t.Fatal(err)
					}
					logs, hcms = append(logs, m.AccessLog), hcms+1
				case xdsgen.TCPProxyFilter:
					var tp tcpproxy.TcpProxy
					if err := f.GetTypedConfig().UnmarshalTo(&tp); err != nil {
						t.Fatal(err)
					}
					logs, tcps = append(logs, tp.AccessLog), tcps+1
				}
			}
		}
	}
	return logs, hcms, tcps
}

func fileLog(t *testing.T, al []*accesslogv3.AccessLog) *filev3.FileAccessLog {
	t.Helper()
	if len(al) != 1 || al[0].GetName() != "envoy.access_loggers.file" {
		t.Fatalf("access_log = %v, want one envoy.access_loggers.file", al)
	}
	var fl filev3.FileAccessLog
	if err := al[0].GetTypedConfig().UnmarshalTo(&fl); err != nil {
		t.Fatal(err)
	}
	return &fl
}

func TestMeshAccessLog(t *testing.T) {
	db := model.Proxy{Type: model.Sidecar, Name: "db-0", Namespace: "default",
		Labels: map[string]string{"app": "db"}, IPs: []string{"127.0.0.1"}, OutboundAddress: "127.0.0.1:15001",
		Inbound: []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}, {Address: "127.0.0.1:20002", App: "127.0.0.1:30002"}}}
	gw := model.Proxy{Type: model.Router, Name: "ingress", Namespace: "istio-system",
		Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"127.0.0.1"}, PortOffset: 8000}
	cases := []struct {
		name, file string
		proxy      model.Proxy
	}{
		{"sidecar", "sidecar-listeners", db},
		{"gateway", "gateway", gw},
	}
	for _, c := range cases {
		t.Run(c.name+"/off by default", func(t *testing.T) {
			logs, hcms, _ := accessLogs(t, generate(t, filepath.Join("testdata", c.file+".yaml"), c.proxy, nil))
			if hcms == 0 {
				t.Fatal("no connection manager generated")
			}
			for _, al := range logs {
				if len(al) != 0 {
					t.Fatalf("access_log without accessLogFile: %v", al)
				}
			}
		})
		t.Run(c.name+"/text", func(t *testing.T) {
			mesh := &meshv1alpha1.MeshConfig{AccessLogFile: "/dev/stdout"}
			logs, hcms, tcps := accessLogs(t, generate(t, filepath.Join("testdata", c.file+".yaml"), c.proxy, mesh))
			if c.name == "sidecar" && (hcms == 0 || tcps == 0) {
				t.Fatalf("want connection managers and tcp_proxies, got %d and %d", hcms, tcps)
			}
			for _, al := range logs {
				fl := fileLog(t, al)
				if fl.Path != "/dev/stdout" {
					t.Errorf("path = %q", fl.Path)
				}
				if got := fl.GetLogFormat().GetTextFormatSource().GetInlineString(); got != istioTextFormat {
					t.Errorf("format = %q\nwant Istio's %q", got, istioTextFormat)
				}
			}
		})
	}
	t.Run("custom text gets a newline", func(t *testing.T) {
		mesh := &meshv1alpha1.MeshConfig{AccessLogFile: "/tmp/x.log", AccessLogFormat: "%RESPONSE_CODE% %UPSTREAM_HOST%"}
		logs, _, _ := accessLogs(t, generate(t, "testdata/sidecar-listeners.yaml", db, mesh))
		if got := fileLog(t, logs[0]).GetLogFormat().GetTextFormatSource().GetInlineString(); got != "%RESPONSE_CODE% %UPSTREAM_HOST%\n" {
			t.Errorf("format = %q", got)
		}
	})
	t.Run("json", func(t *testing.T) {
		mesh := &meshv1alpha1.MeshConfig{AccessLogFile: "/dev/stdout", AccessLogEncoding: meshv1alpha1.MeshConfig_JSON}
		logs, _, _ := accessLogs(t, generate(t, "testdata/sidecar-listeners.yaml", db, mesh))
		js := fileLog(t, logs[0]).GetLogFormat().GetJsonFormat()
		want := map[string]string{"start_time": "%START_TIME%", "response_flags": "%RESPONSE_FLAGS%",
			"response_code_details": "%RESPONSE_CODE_DETAILS%", "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
			"path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%"}
		if len(js.GetFields()) != 24 {
			t.Errorf("json_format has %d fields, Istio's has 24", len(js.GetFields()))
		}
		for k, v := range want {
			if got := js.GetFields()[k].GetStringValue(); got != v {
				t.Errorf("json_format[%s] = %q, want %q", k, got, v)
			}
		}
	})
	t.Run("json custom", func(t *testing.T) {
		mesh := &meshv1alpha1.MeshConfig{AccessLogFile: "/dev/stdout", AccessLogEncoding: meshv1alpha1.MeshConfig_JSON,
			AccessLogFormat: `{"code": "%RESPONSE_CODE%", "host": "%UPSTREAM_HOST%"}`}
		logs, _, _ := accessLogs(t, generate(t, "testdata/sidecar-listeners.yaml", db, mesh))
		js := fileLog(t, logs[0]).GetLogFormat().GetJsonFormat()
		if len(js.GetFields()) != 2 || js.GetFields()["code"].GetStringValue() != "%RESPONSE_CODE%" {
			t.Errorf("json_format = %v", js)
		}
	})
}
