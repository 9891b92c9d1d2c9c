package xdsgen_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// unknownPortService declares port 20004 (workload port) with a name that
// says no protocol: its protocol is UNKNOWN, so it is sniffed too.
const unknownPortService = `---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: db}
  ports: [{name: web, port: 7000}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-web, namespace: default}
spec: {address: 127.0.0.1, labels: {app: db}, ports: {web: 20004}}
`

// The chains of an undeclared inbound port (20003) and of a port whose
// service port has no known protocol (20004) per PeerAuthentication mode:
// Istio's ListenerProtocolAuto options (filterchain_options.go), each
// split into an HTTP and a TCP chain, with the security filters on both;
// the listener filters Istio's populateListenerFilters derives; Istio's
// protocolDetectionTimeout with continue. The declared ports keep their
// chains (TestInboundChainsPerMode).
func TestSniffedInboundChainsPerMode(t *testing.T) {
	const mtlsHTTP = "tls[istio-http/1.0,istio-http/1.1,istio-h2]+mtls:http"
	const plainHTTP = "raw_buffer[http/1.1,h2c]:http"
	pairs := []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}, {Address: "127.0.0.1:20002", App: "127.0.0.1:30002"},
		{Address: "127.0.0.1:20003", App: "127.0.0.1:30003"}, {Address: "127.0.0.1:20004", App: "127.0.0.1:30004"}}
	for _, c := range []struct {
		name, policies string
		chains         []string
		filters        string
	}{
		{name: "PERMISSIVE", chains: []string{mtlsHTTP, plainHTTP, "tls[istio-peer-exchange,istio]+mtls:tcp", "raw_buffer:tcp", "tls:tcp"},
			filters: xdsgen.TLSInspectorFilter + "," + xdsgen.HTTPInspectorFilter},
		{name: "STRICT", policies: pa("istio-system", "default", "{mtls: {mode: STRICT}}"),
			chains: []string{mtlsHTTP, "tls+mtls:tcp"}, filters: xdsgen.TLSInspectorFilter},
		{name: "DISABLE", policies: pa("default", "default", "{mtls: {mode: DISABLE}}"),
			chains: []string{plainHTTP, "raw_buffer:tcp"}, filters: xdsgen.HTTPInspectorFilter},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := generateYAML(t, twoPortWorkload+unknownPortService+securityPolicies+c.policies, dbSidecar(pairs...), nil)
			for _, name := range []string{"virtualInbound_20003", "virtualInbound_20004"} {
				l := listenerNamed(t, res, name)
				var got, filters []string
				for _, fc := range l.FilterChains {
					got = append(got, chainView(t, fc))
					if strings.HasSuffix(chainView(t, fc), ":http") {
						names, _ := httpFilterNames(t, fc.Filters[0])
						if names[0] != "envoy.filters.http.jwt_authn" || names[1] != "envoy.filters.http.rbac" {
							t.Errorf("%s %s: HTTP filters %v, want the security filters first", name, chainView(t, fc), names)
						}
					} else if fc.Filters[0].Name != "envoy.filters.network.rbac" {
						t.Errorf("%s %s: filters start with %s, want the network rbac", name, chainView(t, fc), fc.Filters[0].Name)
					}
				}
				if strings.Join(got, " ") != strings.Join(c.chains, " ") {
					t.Errorf("%s chains %v, want %v", name, got, c.chains)
				}
				for _, f := range l.ListenerFilters {
					filters = append(filters, f.Name)
				}
				if strings.Join(filters, ",") != c.filters {
					t.Errorf("%s listener filters %v, want %s", name, filters, c.filters)
				}
				if l.GetListenerFiltersTimeout().AsDuration() != 0 || l.ListenerFiltersTimeout == nil || !l.ContinueOnListenerFiltersTimeout {
					t.Errorf("%s: listener_filters_timeout %v continue %v, want Istio's 0s and true", name, l.ListenerFiltersTimeout, l.ContinueOnListenerFiltersTimeout)
				}
			}
			for _, name := range []string{"virtualInbound_20001", "virtualInbound_20002"} {
				l := listenerNamed(t, res, name)
				if len(l.ListenerFilters) != 1 || l.ListenerFiltersTimeout != nil || l.ContinueOnListenerFiltersTimeout {
					t.Errorf("declared port %s changed: %v", name, l)
				}
			}
		})
	}
	mesh := &meshv1alpha1.MeshConfig{ProtocolDetectionTimeout: durationpb.New(100 * time.Millisecond)}
	res := generateYAML(t, twoPortWorkload, dbSidecar(pairs...), mesh)
	if d := listenerNamed(t, res, "virtualInbound_20003").GetListenerFiltersTimeout().AsDuration(); d != 100*time.Millisecond {
		t.Errorf("protocolDetectionTimeout 100ms: listener_filters_timeout %v", d)
	}
}
