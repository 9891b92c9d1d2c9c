package xdsgen_test

import (
	"testing"

	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

const grpcWorkload = `apiVersion: v1
kind: Service
metadata: {name: greeter, namespace: default}
spec:
  selector: {app: greeter}
  ports: [{name: grpc, port: 7070}, {name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: greeter-alias, namespace: default}
spec:
  selector: {app: greeter}
  ports: [{name: grpc, port: 7070}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: greeter-0, namespace: default}
spec:
  address: 127.0.0.1
  labels: {app: greeter}
  ports: {grpc: 20001, http: 20002}
`

// TestInboundClusterServicesAndProtocol: an inbound cluster lists, in its
// istio metadata, every service with an endpoint at its port (each host
// once), which the server side's stats read destination_service from;
// a gRPC port's cluster speaks h2c to the app.
func TestInboundClusterServicesAndProtocol(t *testing.T) {
	p := model.Proxy{Type: model.Sidecar, Name: "greeter-0", Namespace: "default", Labels: map[string]string{"app": "greeter"},
		IPs: []string{"127.0.0.1"}, Inbound: []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"},
			{Address: "127.0.0.1:20002", App: "127.0.0.1:30002"}}}
	res := generateYAML(t, grpcWorkload, p, nil)
	grpc := clusterNamed(t, res, xdsgen.ClusterName("inbound", 20001, "", ""))
	var hosts []string
	for _, v := range grpc.GetMetadata().GetFilterMetadata()["istio"].GetFields()["services"].GetListValue().GetValues() {
		f := v.GetStructValue().GetFields()
		hosts = append(hosts, f["host"].GetStringValue()+"/"+f["name"].GetStringValue()+"/"+f["namespace"].GetStringValue())
	}
	if len(hosts) != 2 || hosts[0] == hosts[1] {
		t.Errorf("grpc port services %v, want greeter and greeter-alias once each", hosts)
	}
	for _, h := range hosts {
		if h != "greeter.default.svc.cluster.local/greeter/default" && h != "greeter-alias.default.svc.cluster.local/greeter-alias/default" {
			t.Errorf("service %s", h)
		}
	}
	opts := &httpv3.HttpProtocolOptions{}
	if err := grpc.GetTypedExtensionProtocolOptions()[xdsgen.HTTPProtocolOptionsKey].UnmarshalTo(opts); err != nil ||
		opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Errorf("grpc inbound cluster is not h2c: %v %v", opts, err)
	}
	http := clusterNamed(t, res, xdsgen.ClusterName("inbound", 20002, "", ""))
	if _, ok := http.GetTypedExtensionProtocolOptions()[xdsgen.HTTPProtocolOptionsKey]; ok {
		t.Error("http inbound cluster has protocol options")
	}
	if n := len(http.GetMetadata().GetFilterMetadata()["istio"].GetFields()["services"].GetListValue().GetValues()); n != 1 {
		t.Errorf("http port: %d services, want greeter", n)
	}
}
