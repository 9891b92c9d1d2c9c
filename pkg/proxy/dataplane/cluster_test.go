package dataplane

import (
	"os"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// compileGolden generates xDS for the trafficpolicy golden case and
// compiles it as the proxy would.
func compileGolden(t *testing.T, prev *Runtime, stats *StatsStore) *Runtime {
	t.Helper()
	data, err := os.ReadFile("../../xdsgen/testdata/trafficpolicy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := config.Decode(data, config.DecodeOptions{File: "trafficpolicy.yaml"})
	if len(dec.Errors) > 0 {
		t.Fatal(dec.Errors)
	}
	push := model.NewPushContext(model.PushOptions{Version: "1", Mesh: meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{}), Resources: dec.Resources})
	p := &model.Proxy{Type: model.Sidecar, Name: "client", Namespace: "default", Labels: map[string]string{"app": "client", "tier": "gold"},
		IPs: []string{"127.0.0.1"}, Locality: "us-east/zone-a/rack-1", OutboundAddress: "127.0.0.1:15001"}
	p.ID = p.NodeID()
	res, err := xdsgen.Generate(push, p)
	if err != nil {
		t.Fatal(err)
	}
	items := res.ByType()
	rt, _, err := Compile(CompileOptions{Resources: xdsclient.Resources{Items: items, Versions: map[string]string{}}, Previous: prev, Stats: stats})
	if err != nil {
		t.Fatalf("the proxy rejects what the control plane generates: %v", err)
	}
	return rt
}

// TestCompileTrafficPolicy checks that every traffic policy field the
// control plane generates is honoured by the proxy's compiled clusters.
func TestCompileTrafficPolicy(t *testing.T) {
	rt := compileGolden(t, nil, NewStatsStore())
	cl := func(name string) *upstream.Cluster {
		c := rt.Clusters[name]
		if c == nil {
			t.Fatalf("cluster %s missing", name)
		}
		return c
	}
	v1 := cl("outbound|9080|v1|reviews.default.svc.cluster.local")
	if v1.LB.Policy != upstream.RoundRobin || !v1.LB.LocalityWeighted || v1.LB.PanicThreshold != 20 {
		t.Errorf("reviews v1 lb %+v: want ROUND_ROBIN, locality weighted, panic threshold 20", v1.LB)
	}
	if want := (upstream.Thresholds{MaxConnections: 100, MaxPendingRequests: 10, MaxRequests: 500, MaxRetries: 4}); v1.Limits != want {
		t.Errorf("reviews v1 limits %+v, want %+v", v1.Limits, want)
	}
	od := v1.Outlier
	if od == nil || od.Consecutive5xx != 3 || od.Interval != 5*time.Second || od.BaseEjectionTime != 15*time.Second ||
		od.MaxEjectionPercent != 50 || od.MaxEjectionTime != 300*time.Second || od.ConsecutiveGatewayEnforcing != 0 {
		t.Errorf("reviews v1 outlier %+v", od)
	}
	topts := v1.Transport.Options
	if topts.ConnectTimeout != 250*time.Millisecond || topts.IdleTimeout != 30*time.Second || topts.MaxRequestsPerConnection != 20 ||
		topts.Keepalive != (upstream.KeepaliveOptions{Enabled: true, Probes: 3, Idle: 600 * time.Second, Interval: 75 * time.Second}) {
		t.Errorf("reviews v1 transport %+v", topts)
	}
	// Priorities: rack-1 (the client's subzone) first, then us-west (the
	// failover region).
	if len(v1.Priorities) != 2 || v1.Priorities[0].Localities[0].Locality != "us-east/zone-a/rack-1" ||
		v1.Priorities[1].Localities[0].Locality != "us-west/zone-a" {
		t.Errorf("reviews v1 priorities %+v", v1.Priorities)
	}
	if v1.Hosts[0].Weight != 2 {
		t.Errorf("reviews-local weight %d, want the WorkloadEntry's 2", v1.Hosts[0].Weight)
	}
	all := cl("outbound|9080||reviews.default.svc.cluster.local")
	if len(all.Priorities) != 5 {
		t.Errorf("reviews has %d priorities, want 5 (subzone, zone, region, failover region, rest)", len(all.Priorities))
	}
	if v2 := cl("outbound|9080|v2|reviews.default.svc.cluster.local"); v2.LB.Policy != upstream.RingHash || v2.LB.MinRingSize != 2048 {
		t.Errorf("reviews v2 lb %+v, want ring hash 2048", v2.LB)
	}
	if v3 := cl("outbound|9080|v3|reviews.default.svc.cluster.local"); v3.LB.Policy != upstream.Maglev || v3.LB.TableSize != 1021 || v3.Outlier != nil {
		t.Errorf("reviews v3 lb %+v outlier %v, want maglev 1021 and no outlier detection (port level replaces)", v3.LB, v3.Outlier)
	}
	if v4 := cl("outbound|9080|v4|reviews.default.svc.cluster.local"); v4.Kind != upstream.OriginalDst {
		t.Errorf("reviews v4 (PASSTHROUGH) kind %v, want original destination", v4.Kind)
	}
	if p := cl("outbound|9443||reviews.default.svc.cluster.local"); p.LB.Policy != upstream.LeastRequest || !p.HTTP2 ||
		p.Limits != (upstream.Thresholds{MaxConnections: 4294967295, MaxPendingRequests: 4294967295, MaxRequests: 4294967295, MaxRetries: 4294967295}) {
		t.Errorf("reviews 9443 lb %v http2 %v limits %+v: want least request, h2, Istio's unlimited defaults", p.LB.Policy, p.HTTP2, p.Limits)
	}
	ratings := cl("outbound|9080||ratings.default.svc.cluster.local")
	if o := ratings.Outlier; o == nil || !o.SplitLocalOrigin || o.ConsecutiveLocal != 4 || o.ConsecutiveGateway != 2 ||
		o.ConsecutiveGatewayEnforcing != 100 || o.Consecutive5xxEnforcing != 0 || ratings.LB.PanicThreshold != 0 {
		t.Errorf("ratings outlier %+v panic %v", ratings.Outlier, ratings.LB.PanicThreshold)
	}
	if d := cl("outbound|9080||details.default.svc.cluster.local"); !d.UseDownstreamProtocol || d.Transport.H2 == nil || d.LB.Policy != upstream.Random {
		t.Errorf("details: use downstream %v, random %v", d.UseDownstreamProtocol, d.LB.Policy)
	}
	if inv := cl("outbound|8080||inventory.default.svc.cluster.local"); inv.LB.Policy != upstream.LeastRequest || inv.LB.ChoiceCount != 2 {
		t.Errorf("inventory (no rule): %v, want least request P2C", inv.LB)
	}
	pay := cl("outbound|8080||payments.default.svc.cluster.local")
	if pay.Outlier == nil || pay.Outlier.Consecutive5xx != 5 || pay.Outlier.Consecutive5xxEnforcing != 100 || pay.Outlier.ConsecutiveGatewayEnforcing != 0 || !pay.HTTP2 {
		// Deprecated consecutiveErrors is ignored as current Istio does:
		// Envoy's default of 5 consecutive 5xx applies.
		t.Errorf("payments (deprecated consecutiveErrors ignored, h2 upgrade): outlier %+v http2 %v", pay.Outlier, pay.HTTP2)
	}
	// The routes carry the hash policies.
	table := rt.Routes[xdsgen.OutboundRouteName]
	if table == nil {
		t.Fatal("no outbound route table")
	}
}

// TestHostsSurvivePush compiles twice: hosts, their ejection state and the
// pools carry over when unchanged.
func TestHostsSurvivePush(t *testing.T) {
	stats := NewStatsStore()
	rt1 := compileGolden(t, nil, stats)
	name := "outbound|9080|v1|reviews.default.svc.cluster.local"
	c1 := rt1.Clusters[name]
	h := c1.Hosts[0]
	for i := 0; i < 3; i++ {
		c1.Record(h, upstream.OutcomeResponse, 500)
	}
	rt2 := compileGolden(t, rt1, stats)
	c2 := rt2.Clusters[name]
	if c2.Hosts[0] != h || c2.Transport != c1.Transport || c2.Stats != c1.Stats {
		t.Fatal("host record, pool or stats not reused across an identical push")
	}
	// v1 has 2 hosts and max 50% ejection: the third 5xx ejected the first.
	if !c2.Hosts[0].Ejected() {
		t.Fatal("ejection lost across the push")
	}
	for i := 0; i < 20; i++ {
		if c2.Pick(nil) == h {
			t.Fatal("new runtime picked the host ejected under the old one")
		}
	}
}

func httpOpts(t *testing.T, po *httpv3.HttpProtocolOptions) map[string]*anypb.Any {
	a, err := anypb.New(po)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*anypb.Any{httpProtocolOptionsKey: a}
}

// TestCheckClusterRejects: what sluice cannot honour is a NACK with the
// reason, never silently ignored.
func TestCheckClusterRejects(t *testing.T) {
	base := func() *cluster.Cluster {
		return &cluster.Cluster{Name: "c", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
			LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: "c"}}
	}
	cases := []struct {
		name string
		mod  func(c *cluster.Cluster)
		want string
	}{
		{"success rate ejection (Envoy's default)", func(c *cluster.Cluster) { c.OutlierDetection = &cluster.OutlierDetection{} }, "success rate"},
		{"slow start", func(c *cluster.Cluster) {
			c.LbPolicy = cluster.Cluster_LEAST_REQUEST
			c.LbConfig = &cluster.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &cluster.Cluster_LeastRequestLbConfig{
				SlowStartConfig: &cluster.Cluster_SlowStartConfig{SlowStartWindow: durationpb.New(time.Second)}}}
		}, "slow_start_config"},
		{"maglev table not prime", func(c *cluster.Cluster) {
			c.LbPolicy = cluster.Cluster_MAGLEV
			c.LbConfig = &cluster.Cluster_MaglevLbConfig_{MaglevLbConfig: &cluster.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(1000)}}
		}, "not a prime"},
		{"murmur ring", func(c *cluster.Cluster) {
			c.LbPolicy = cluster.Cluster_RING_HASH
			c.LbConfig = &cluster.Cluster_RingHashLbConfig_{RingHashLbConfig: &cluster.Cluster_RingHashLbConfig{HashFunction: cluster.Cluster_RingHashLbConfig_MURMUR_HASH_2}}
		}, "hash_function"},
		{"zone aware", func(c *cluster.Cluster) {
			c.CommonLbConfig = &cluster.Cluster_CommonLbConfig{LocalityConfigSpecifier: &cluster.Cluster_CommonLbConfig_ZoneAwareLbConfig_{
				ZoneAwareLbConfig: &cluster.Cluster_CommonLbConfig_ZoneAwareLbConfig{}}}
		}, "zone_aware"},
		{"retry budget", func(c *cluster.Cluster) {
			c.CircuitBreakers = &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{{RetryBudget: &cluster.CircuitBreakers_Thresholds_RetryBudget{}}}}
		}, "retry_budget"},
		{"max concurrent streams", func(c *cluster.Cluster) {
			c.TypedExtensionProtocolOptions = httpOpts(t, &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &core.Http2ProtocolOptions{MaxConcurrentStreams: wrapperspb.UInt32(10)}}}}})
		}, "max_concurrent_streams"},
		{"max stream duration", func(c *cluster.Cluster) {
			c.TypedExtensionProtocolOptions = httpOpts(t, &httpv3.HttpProtocolOptions{
				CommonHttpProtocolOptions: &core.HttpProtocolOptions{MaxStreamDuration: durationpb.New(time.Second)},
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{}}}})
		}, "common_http_protocol_options"},
		{"health checks", func(c *cluster.Cluster) { c.HealthChecks = []*core.HealthCheck{{}} }, "health_checks"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(c)
			_, err := checkCluster(c)
			if err == nil {
				t.Fatalf("accepted; want an error mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	// What Istio generates for outlier detection is accepted.
	c := base()
	c.OutlierDetection = &cluster.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0)}
	if _, err := checkCluster(c); err != nil {
		t.Errorf("Istio-style outlier detection rejected: %v", err)
	}
}
