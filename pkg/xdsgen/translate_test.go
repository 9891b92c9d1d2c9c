package xdsgen

// Table tests of the generator's pure translations, beside the golden
// files: each case gives an Istio input and the xDS fields Envoy must get,
// and every output goes through Validate (Envoy's ValidateAll) inside a
// resource, as Generate's output does. The expected values restate Istio's
// translation (istio/istio pilot/pkg/networking/core/route/route.go
// translateRouteMatch and the weighted-cluster build of
// BuildDefaultHTTPOutboundRoute; core/cluster_traffic_policy.go
// applyConnectionPool and applyOutlierDetection).

import (
	"math"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// sameProto fails t naming what when got and want differ, printing both.
func sameProto(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		g, _ := protojson.Marshal(got)
		w, _ := protojson.Marshal(want)
		t.Errorf("%s:\n  got:  %s\n  want: %s", what, g, w)
	}
}

// validRoute checks r as Envoy would receive it: in a virtual host of a
// route configuration, through Validate.
func validRoute(t *testing.T, r *route.Route) {
	t.Helper()
	rc := &route.RouteConfiguration{Name: "table", VirtualHosts: []*route.VirtualHost{
		{Name: "table", Domains: []string{"*"}, Routes: []*route.Route{r}}}}
	if err := Validate(&Resources{Routes: []*route.RouteConfiguration{rc}}); err != nil {
		t.Errorf("ValidateAll: %v", err)
	}
}

func exact(s string) *networking.StringMatch {
	return &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: s}}
}

func prefix(s string) *networking.StringMatch {
	return &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: s}}
}

func regex(s string) *networking.StringMatch {
	return &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: s}}
}

func exactHeader(name, v string, invert bool) *route.HeaderMatcher {
	return &route.HeaderMatcher{Name: name, InvertMatch: invert, HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{
		StringMatch: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: v}}}}
}

func presentHeader(name string, invert bool) *route.HeaderMatcher {
	return &route.HeaderMatcher{Name: name, InvertMatch: invert, HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}}
}

func TestTranslateMatchTable(t *testing.T) {
	cases := []struct {
		name string
		in   *networking.HTTPMatchRequest
		want *route.RouteMatch
	}{
		{"no match block: everything", nil,
			&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}}},
		{"empty block: everything", &networking.HTTPMatchRequest{},
			&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}}},
		{"uri exact", &networking.HTTPMatchRequest{Uri: exact("/productpage")},
			&route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/productpage"}}},
		{"uri prefix, case-insensitive", &networking.HTTPMatchRequest{Uri: prefix("/api/"), IgnoreUriCase: true},
			&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/api/"}, CaseSensitive: wrapperspb.Bool(false)}},
		{"uri regex", &networking.HTTPMatchRequest{Uri: regex("/v[0-9]+/.*")},
			&route.RouteMatch{PathSpecifier: &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: "/v[0-9]+/.*"}}}},
		{"headers sorted by name and lower-cased, then withoutHeaders inverted",
			&networking.HTTPMatchRequest{
				Headers:        map[string]*networking.StringMatch{"End-User": exact("jason"), "canary": {}},
				WithoutHeaders: map[string]*networking.StringMatch{"x-debug": {}},
			},
			&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}, Headers: []*route.HeaderMatcher{
				exactHeader("end-user", "jason", false), presentHeader("canary", false), presentHeader("x-debug", true)}}},
		{"scheme, method and authority as pseudo-headers",
			&networking.HTTPMatchRequest{Scheme: exact("https"), Method: exact("GET"), Authority: prefix("reviews")},
			&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}, Headers: []*route.HeaderMatcher{
				exactHeader(":scheme", "https", false), exactHeader(":method", "GET", false),
				{Name: ":authority", HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: &matcher.StringMatcher{
					MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "reviews"}}}}}}},
		{"query parameters: a value, or presence for an empty match",
			&networking.HTTPMatchRequest{QueryParams: map[string]*networking.StringMatch{"v": exact("2"), "debug": {}}},
			&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: []*route.QueryParameterMatcher{
				{Name: "debug", QueryParameterMatchSpecifier: &route.QueryParameterMatcher_PresentMatch{PresentMatch: true}},
				{Name: "v", QueryParameterMatchSpecifier: &route.QueryParameterMatcher_StringMatch{StringMatch: &matcher.StringMatcher{
					MatchPattern: &matcher.StringMatcher_Exact{Exact: "2"}}}}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := translateMatch(c.in)
			sameProto(t, "route match", got, c.want)
			validRoute(t, &route.Route{Match: got, Action: &route.Route_Route{Route: &route.RouteAction{
				ClusterSpecifier: &route.RouteAction_Cluster{Cluster: "c"}}}})
		})
	}
}

// tablePush is a push context with a one-port service (reviews, with
// subsets' workloads), a two-port one (ratings) and an external host.
func tablePush(t *testing.T) *model.PushContext {
	t.Helper()
	const yaml = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: http-admin, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
`
	dec := config.Decode([]byte(yaml), config.DecodeOptions{File: "table.yaml"})
	if len(dec.Errors) > 0 {
		t.Fatalf("decode: %v", dec.Errors)
	}
	for _, r := range dec.Resources {
		if errs := config.Validate(r); len(errs) > 0 {
			t.Fatalf("validate: %v", errs)
		}
	}
	return model.NewPushContext(model.PushOptions{Version: "1", Mesh: meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{}), Resources: dec.Resources})
}

func dest(host, subset string, port uint32, weight int32) *networking.HTTPRouteDestination {
	d := &networking.HTTPRouteDestination{Destination: &networking.Destination{Host: host, Subset: subset}, Weight: weight}
	if port != 0 {
		d.Destination.Port = &networking.PortSelector{Number: port}
	}
	return d
}

func weighted(ws ...*route.WeightedCluster_ClusterWeight) *route.RouteAction_WeightedClusters {
	return &route.RouteAction_WeightedClusters{WeightedClusters: &route.WeightedCluster{Clusters: ws}}
}

func clusterWeight(name string, w uint32) *route.WeightedCluster_ClusterWeight {
	return &route.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(w)}
}

func one(name string) *route.RouteAction_Cluster { return &route.RouteAction_Cluster{Cluster: name} }

// TestForwardActionTable covers host and port resolution (short names in
// the route's namespace, the service's only port, else the port the
// request came in on) and weighted clusters.
func TestForwardActionTable(t *testing.T) {
	push := tablePush(t)
	const (
		reviews = "reviews.default.svc.cluster.local"
		ratings = "ratings.default.svc.cluster.local"
	)
	cases := []struct {
		name string
		ns   string
		port uint32 // the port the request came in on
		in   *networking.HTTPRoute
		want *route.RouteAction
	}{
		{"short host, the service's only port", "default", 80,
			&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("reviews", "", 0, 0)}},
			&route.RouteAction{ClusterSpecifier: one("outbound|9080||" + reviews)}},
		{"short host resolved in the route's namespace; unknown service: the request's port", "prod", 8080,
			&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("reviews", "", 0, 0)}},
			&route.RouteAction{ClusterSpecifier: one("outbound|8080||reviews.prod.svc.cluster.local")}},
		{"two-port service without a port: the request's port", "default", 9090,
			&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("ratings", "", 0, 0)}},
			&route.RouteAction{ClusterSpecifier: one("outbound|9090||" + ratings)}},
		{"explicit port and subset", "default", 80,
			&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest(ratings, "v2", 9080, 0)}},
			&route.RouteAction{ClusterSpecifier: one("outbound|9080|v2|" + ratings)}},
		{"external FQDN kept as written", "default", 80,
			&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("httpbin.org", "", 443, 0)}},
			&route.RouteAction{ClusterSpecifier: one("outbound|443||httpbin.org")}},
		{"weighted split", "default", 80,
			&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("reviews", "v1", 0, 75), dest("reviews", "v2", 0, 25)}},
			&route.RouteAction{ClusterSpecifier: weighted(
				clusterWeight("outbound|9080|v1|"+reviews, 75), clusterWeight("outbound|9080|v2|"+reviews, 25))}},
		{"zero-weight destination dropped", "default", 80,
			&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("reviews", "v1", 0, 100), dest("reviews", "v2", 0, 0)}},
			&route.RouteAction{ClusterSpecifier: weighted(clusterWeight("outbound|9080|v1|"+reviews, 100))}},
		{"every weight zero: black hole", "default", 80,
			&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("reviews", "v1", 0, 0), dest("reviews", "v2", 0, 0)}},
			&route.RouteAction{ClusterSpecifier: one(BlackHoleCluster)}},
		{"one destination with headers: a weighted cluster of 100 carrying them", "default", 80,
			&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{{
				Destination: &networking.Destination{Host: "reviews"},
				Headers:     &networking.Headers{Request: &networking.Headers_HeaderOperations{Remove: []string{"x-internal"}}}}}},
			&route.RouteAction{ClusterSpecifier: weighted(&route.WeightedCluster_ClusterWeight{
				Name: "outbound|9080||" + reviews, Weight: wrapperspb.UInt32(100), RequestHeadersToRemove: []string{"x-internal"}})}},
		{"timeout, prefix and authority rewrite", "default", 80,
			&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("reviews", "", 0, 0)},
				Timeout: durationpb.New(5 * time.Second), Rewrite: &networking.HTTPRewrite{Uri: "/v2/", Authority: "reviews.internal"}},
			&route.RouteAction{ClusterSpecifier: one("outbound|9080||" + reviews), Timeout: durationpb.New(5 * time.Second),
				PrefixRewrite: "/v2/", HostRewriteSpecifier: &route.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "reviews.internal"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := &generation{push: push, proxy: &model.Proxy{Type: model.Sidecar, Name: "client", Namespace: c.ns}, out: &Resources{}}
			got := g.forwardAction(c.in, c.ns, routeContext{port: c.port, gateway: "mesh"})
			if c.want.Timeout == nil {
				c.want.Timeout = durationpb.New(0) // Istio: no route timeout unless set
			}
			sameProto(t, "route action", got, c.want)
			validRoute(t, &route.Route{Match: translateMatch(nil), Action: &route.Route_Route{Route: got}})
		})
	}
}

// tableCluster is an EDS cluster as the generator starts one.
func tableCluster() *cluster.Cluster {
	const name = "outbound|9080||reviews.default.svc.cluster.local"
	return &cluster.Cluster{Name: name, ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{ServiceName: name, EdsConfig: adsSource()}}
}

func validCluster(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	if err := Validate(&Resources{Clusters: []*cluster.Cluster{c}}); err != nil {
		t.Errorf("ValidateAll: %v", err)
	}
}

func TestApplyOutlierDetectionTable(t *testing.T) {
	base := func() *cluster.OutlierDetection {
		// Success-rate ejection off; one host may always be ejected.
		return &cluster.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0), AlwaysEjectOneHost: wrapperspb.Bool(true)}
	}
	cases := []struct {
		name       string
		in         *networking.OutlierDetection
		want       *cluster.OutlierDetection
		wantPanicT *typev3.Percent
	}{
		{"none", nil, nil, nil},
		{"consecutive 5xx with interval, ejection time and percent",
			&networking.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(7), Interval: durationpb.New(10 * time.Second),
				BaseEjectionTime: durationpb.New(30 * time.Second), MaxEjectionPercent: 50},
			func() *cluster.OutlierDetection {
				o := base()
				o.Consecutive_5Xx, o.EnforcingConsecutive_5Xx = wrapperspb.UInt32(7), wrapperspb.UInt32(100)
				o.Interval, o.BaseEjectionTime = durationpb.New(10*time.Second), durationpb.New(30*time.Second)
				o.MaxEjectionPercent = wrapperspb.UInt32(50)
				return o
			}(), &typev3.Percent{Value: 0}},
		{"consecutive 5xx of 0 turns that detection off",
			&networking.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(0)},
			func() *cluster.OutlierDetection {
				o := base()
				o.Consecutive_5Xx, o.EnforcingConsecutive_5Xx = wrapperspb.UInt32(0), wrapperspb.UInt32(0)
				return o
			}(), &typev3.Percent{Value: 0}},
		{"gateway errors, minimum health as the panic threshold",
			&networking.OutlierDetection{ConsecutiveGatewayErrors: wrapperspb.UInt32(3), MinHealthPercent: 40},
			func() *cluster.OutlierDetection {
				o := base()
				o.ConsecutiveGatewayFailure, o.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(3), wrapperspb.UInt32(100)
				return o
			}(), &typev3.Percent{Value: 40}},
		{"local-origin failures split out",
			&networking.OutlierDetection{SplitExternalLocalOriginErrors: true, ConsecutiveLocalOriginFailures: wrapperspb.UInt32(2)},
			func() *cluster.OutlierDetection {
				o := base()
				o.SplitExternalLocalOriginErrors = true
				o.ConsecutiveLocalOriginFailure, o.EnforcingConsecutiveLocalOriginFailure = wrapperspb.UInt32(2), wrapperspb.UInt32(100)
				o.EnforcingLocalOriginSuccessRate = wrapperspb.UInt32(0)
				return o
			}(), &typev3.Percent{Value: 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := tableCluster()
			applyOutlierDetection(cl, c.in)
			sameProto(t, "outlier_detection", cl.OutlierDetection, c.want)
			sameProto(t, "healthy_panic_threshold", cl.GetCommonLbConfig().GetHealthyPanicThreshold(), c.wantPanicT)
			validCluster(t, cl)
		})
	}
}

func TestApplyConnectionPoolTable(t *testing.T) {
	unlimited := uint32(math.MaxUint32)
	thresholds := func(cx, pending, rq, retries uint32) *cluster.CircuitBreakers_Thresholds {
		return &cluster.CircuitBreakers_Thresholds{MaxConnections: wrapperspb.UInt32(cx), MaxPendingRequests: wrapperspb.UInt32(pending),
			MaxRequests: wrapperspb.UInt32(rq), MaxRetries: wrapperspb.UInt32(retries), TrackRemaining: true}
	}
	http1 := &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &core.Http1ProtocolOptions{}}}}
	cases := []struct {
		name        string
		mesh        *meshv1alpha1.MeshConfig
		in          *networking.ConnectionPoolSettings
		thresholds  *cluster.CircuitBreakers_Thresholds
		connect     time.Duration
		http        *httpv3.HttpProtocolOptions // nil: no protocol options
		tcpKeepOpts *core.TcpKeepalive
	}{
		{"empty: Istio's unlimited defaults, the 10s connect timeout", nil, &networking.ConnectionPoolSettings{},
			thresholds(unlimited, unlimited, unlimited, unlimited), 10 * time.Second, nil, nil},
		{"the mesh's connect timeout", &meshv1alpha1.MeshConfig{ConnectTimeout: durationpb.New(3 * time.Second)}, &networking.ConnectionPoolSettings{},
			thresholds(unlimited, unlimited, unlimited, unlimited), 3 * time.Second, nil, nil},
		{"circuit-breaking task's limits", nil, &networking.ConnectionPoolSettings{
			Tcp:  &networking.ConnectionPoolSettings_TCPSettings{MaxConnections: 1},
			Http: &networking.ConnectionPoolSettings_HTTPSettings{Http1MaxPendingRequests: 1, MaxRequestsPerConnection: 1}},
			thresholds(1, 1, unlimited, unlimited), 10 * time.Second,
			&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: http1,
				CommonHttpProtocolOptions: &core.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(1)}}, nil},
		{"http2 requests, retries, idle timeout over the tcp one, connect timeout", nil, &networking.ConnectionPoolSettings{
			Tcp: &networking.ConnectionPoolSettings_TCPSettings{ConnectTimeout: durationpb.New(2 * time.Second),
				IdleTimeout: durationpb.New(time.Minute), MaxConnectionDuration: durationpb.New(time.Hour)},
			Http: &networking.ConnectionPoolSettings_HTTPSettings{Http2MaxRequests: 50, MaxRetries: 3, IdleTimeout: durationpb.New(30 * time.Second)}},
			thresholds(unlimited, unlimited, 50, 3), 2 * time.Second,
			&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: http1, CommonHttpProtocolOptions: &core.HttpProtocolOptions{
				IdleTimeout: durationpb.New(30 * time.Second), MaxConnectionDuration: durationpb.New(time.Hour)}}, nil},
		{"tcp idle timeout when http has none", nil, &networking.ConnectionPoolSettings{
			Tcp: &networking.ConnectionPoolSettings_TCPSettings{IdleTimeout: durationpb.New(time.Minute)}},
			thresholds(unlimited, unlimited, unlimited, unlimited), 10 * time.Second,
			&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: http1, CommonHttpProtocolOptions: &core.HttpProtocolOptions{
				IdleTimeout: durationpb.New(time.Minute)}}, nil},
		{"useClientProtocol", nil, &networking.ConnectionPoolSettings{Http: &networking.ConnectionPoolSettings_HTTPSettings{UseClientProtocol: true}},
			thresholds(unlimited, unlimited, unlimited, unlimited), 10 * time.Second,
			&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
				UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
					HttpProtocolOptions: &core.Http1ProtocolOptions{}, Http2ProtocolOptions: &core.Http2ProtocolOptions{}}}}, nil},
		{"keepalive: the rule's fields over the mesh's", &meshv1alpha1.MeshConfig{
			TcpKeepalive: &networking.ConnectionPoolSettings_TCPSettings_TcpKeepalive{Probes: 9, Time: durationpb.New(7200 * time.Second)}},
			&networking.ConnectionPoolSettings{Tcp: &networking.ConnectionPoolSettings_TCPSettings{
				TcpKeepalive: &networking.ConnectionPoolSettings_TCPSettings_TcpKeepalive{Time: durationpb.New(10 * time.Second), Interval: durationpb.New(5 * time.Second)}}},
			thresholds(unlimited, unlimited, unlimited, unlimited), 10 * time.Second, nil,
			&core.TcpKeepalive{KeepaliveProbes: wrapperspb.UInt32(9), KeepaliveTime: wrapperspb.UInt32(10), KeepaliveInterval: wrapperspb.UInt32(5)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mesh := c.mesh
			if mesh == nil {
				mesh = meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{})
			}
			g := &generation{push: model.NewPushContext(model.PushOptions{Version: "1", Mesh: mesh}), out: &Resources{}}
			b := &clusterBuild{c: tableCluster()}
			g.applyConnectionPool(b, c.in)
			cl := b.finish()
			if th := cl.GetCircuitBreakers().GetThresholds(); len(th) != 1 {
				t.Fatalf("circuit breakers: %d thresholds, want 1 (default priority)", len(th))
			} else {
				sameProto(t, "circuit breaker thresholds", th[0], c.thresholds)
			}
			sameProto(t, "connect_timeout", cl.ConnectTimeout, durationpb.New(c.connect))
			var got *httpv3.HttpProtocolOptions
			if a := cl.TypedExtensionProtocolOptions[HTTPProtocolOptionsKey]; a != nil {
				got = &httpv3.HttpProtocolOptions{}
				if err := a.UnmarshalTo(got); err != nil {
					t.Fatal(err)
				}
			}
			sameProto(t, "http protocol options", got, c.http)
			sameProto(t, "tcp keepalive", cl.GetUpstreamConnectionOptions().GetTcpKeepalive(), c.tcpKeepOpts)
			validCluster(t, cl)
		})
	}
}
