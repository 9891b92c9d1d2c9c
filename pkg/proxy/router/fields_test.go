package router_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previouspriorities "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	// The filters compile their part of each route, as in the proxy.
	_ "github.com/sluice-mesh/sluice/pkg/proxy/filters/cors"
	_ "github.com/sluice-mesh/sluice/pkg/proxy/filters/fault"
	_ "github.com/sluice-mesh/sluice/pkg/proxy/filters/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// TestGoldenRoutesCompile: every route configuration sluice's control
// plane generates (the xdsgen golden files, which hold the xDS resources)
// compiles in the proxy, so every field xdsgen sets is honoured.
func TestGoldenRoutesCompile(t *testing.T) {
	files, err := filepath.Glob("../../xdsgen/testdata/*.golden.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var golden struct{ Routes []json.RawMessage }
		if err := json.Unmarshal(data, &golden); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, raw := range golden.Routes {
			var rc route.RouteConfiguration
			if err := protojson.Unmarshal(raw, &rc); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if _, err := router.Compile(&rc); err != nil {
				t.Errorf("%s: the proxy NACKs what the control plane generates: %v", filepath.Base(f), err)
			}
			n++
		}
	}
	if n < 10 {
		t.Errorf("only %d route configurations in the golden files", n)
	}
}

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// fullRouteConfig is a valid route configuration holding at least one of
// each message on the allow-list, every one with some fields set.
func fullRouteConfig(t *testing.T) *route.RouteConfiguration {
	exact := &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: "v"}}
	hdrs := func() []*core.HeaderValueOption {
		return []*core.HeaderValueOption{{Header: &core.HeaderValue{Key: "x-a", Value: "1"}}}
	}
	retry := func() *route.RetryPolicy {
		return &route.RetryPolicy{RetryOn: "5xx,retriable-headers", NumRetries: wrapperspb.UInt32(2),
			RetryBackOff:       &route.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(25 * time.Millisecond)},
			RetryHostPredicate: []*route.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts", ConfigType: &route.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: anyOf(t, &previoushosts.PreviousHostsPredicate{})}}},
			RetryPriority: &route.RetryPolicy_RetryPriority{Name: "envoy.retry_priorities.previous_priorities",
				ConfigType: &route.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: anyOf(t, &previouspriorities.PreviousPrioritiesConfig{UpdateFrequency: 2})}},
			RetriableHeaders: []*route.HeaderMatcher{{Name: ":status", HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: exact}}}}
	}
	mirrors := func() []*route.RouteAction_RequestMirrorPolicy {
		return []*route.RouteAction_RequestMirrorPolicy{{Cluster: "m",
			RuntimeFraction: &core.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 50}}}}
	}
	cors := func() *route.CorsPolicy { return &route.CorsPolicy{AllowMethods: "GET"} }
	return &route.RouteConfiguration{Name: "rc", ValidateClusters: wrapperspb.Bool(false), VirtualHosts: []*route.VirtualHost{{
		Name: "vh", Domains: []string{"*"}, RetryPolicy: retry(), RequestMirrorPolicies: mirrors(),
		Cors: cors(), RequestHeadersToAdd: hdrs(), //nolint:staticcheck // deprecated, still honoured
		Routes: []*route.Route{
			{Name: "fwd", Decorator: &route.Decorator{Operation: "op"},
				Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"},
					Headers:         []*route.HeaderMatcher{{Name: "x-h", HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: exact}}},
					QueryParameters: []*route.QueryParameterMatcher{{Name: "q", QueryParameterMatchSpecifier: &route.QueryParameterMatcher_PresentMatch{PresentMatch: true}}}},
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_WeightedClusters{WeightedClusters: &route.WeightedCluster{
						Clusters: []*route.WeightedCluster_ClusterWeight{{Name: "a", Weight: wrapperspb.UInt32(1), RequestHeadersToAdd: hdrs()}}}},
					RetryPolicy: retry(), RequestMirrorPolicies: mirrors(), Cors: cors(), //nolint:staticcheck // deprecated, still honoured
					HashPolicy: []*route.RouteAction_HashPolicy{
						{PolicySpecifier: &route.RouteAction_HashPolicy_Header_{Header: &route.RouteAction_HashPolicy_Header{HeaderName: "x-u"}}},
						{PolicySpecifier: &route.RouteAction_HashPolicy_Cookie_{Cookie: &route.RouteAction_HashPolicy_Cookie{Name: "c"}}},
						{PolicySpecifier: &route.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &route.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}},
						{PolicySpecifier: &route.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &route.RouteAction_HashPolicy_QueryParameter{Name: "q"}}}},
					UpgradeConfigs: []*route.RouteAction_UpgradeConfig{{UpgradeType: "websocket"}}}}},
			{Name: "redirect", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/old"}},
				Action: &route.Route_Redirect{Redirect: &route.RedirectAction{HostRedirect: "h"}}},
			{Name: "direct", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/d"}},
				Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 200,
					Body: &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: "ok"}}}}},
			{Name: "connect", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_ConnectMatcher_{ConnectMatcher: &route.RouteMatch_ConnectMatcher{}}},
				Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: "t"},
					UpgradeConfigs: []*route.RouteAction_UpgradeConfig{{UpgradeType: "CONNECT", ConnectConfig: &route.RouteAction_UpgradeConfig_ConnectConfig{}}}}}},
		},
	}}}
}

// instance is a message on the allow-list found in a route
// configuration: where (the error prefix Compile gives it, and its path
// from the message checked there) and what.
type instance struct {
	where, path string
	m           protoreflect.Message
}

// instances lists, in a fixed order, every message of rc whose type is on
// the allow-list, with the error prefix and path Compile's NACK names:
// the route configuration, virtual hosts and routes are each checked
// where they are compiled, the messages inside them by path.
func instances(rc *route.RouteConfiguration) []instance {
	var out []instance
	var walk func(m protoreflect.Message, where, path string, skip protoreflect.FullName)
	walk = func(m protoreflect.Message, where, path string, skip protoreflect.FullName) {
		if _, ok := router.Fields[m.Descriptor().FullName()]; !ok {
			return
		}
		out = append(out, instance{where, path, m})
		fields := m.Descriptor().Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			if fd.Message() == nil || fd.IsMap() || fd.Message().FullName() == skip || !m.Has(fd) {
				continue
			}
			p := path + string(fd.Name())
			if fd.IsList() {
				l := m.Get(fd).List()
				for j := 0; j < l.Len(); j++ {
					walk(l.Get(j).Message(), where, fmt.Sprintf("%s[%d].", p, j), skip)
				}
				continue
			}
			walk(m.Get(fd).Message(), where, p+".", skip)
		}
	}
	rcWhere := fmt.Sprintf("route config %q: ", rc.Name)
	walk(rc.ProtoReflect(), rcWhere, "", "envoy.config.route.v3.VirtualHost")
	for _, vh := range rc.VirtualHosts {
		vhWhere := fmt.Sprintf("%svirtual host %q: ", rcWhere, vh.Name)
		walk(vh.ProtoReflect(), vhWhere, "", "envoy.config.route.v3.Route")
		for i, r := range vh.Routes {
			walk(r.ProtoReflect(), fmt.Sprintf("%sroute %d (%q): ", vhWhere, i, r.Name), "", "")
		}
	}
	return out
}

// TestRouteFieldsNACK: every field of every route configuration message
// the proxy does not honour, set on an otherwise good configuration, is
// NACKed with an error naming the message path and the field. The fields
// tried come from the message descriptors, so a field added to
// go-control-plane is covered without editing this test.
func TestRouteFieldsNACK(t *testing.T) {
	if _, err := router.Compile(fullRouteConfig(t)); err != nil {
		t.Fatalf("base configuration: %v", err)
	}
	seen := map[protoreflect.FullName]bool{}
	tried := 0
	for k, in := range instances(fullRouteConfig(t)) {
		seen[in.m.Descriptor().FullName()] = true
		honoured := router.Fields[in.m.Descriptor().FullName()]
		fields := in.m.Descriptor().Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			if honoured[fd.Name()] {
				continue
			}
			tried++
			rc := fullRouteConfig(t)
			xdsfields.SetSomething(instances(rc)[k].m, fd)
			want := in.where + in.path + string(fd.Name()) + ": not supported"
			if _, err := router.Compile(rc); err == nil || err.Error() != want {
				t.Errorf("%s%s set: err = %v, want %q", in.path, fd.Name(), err, want)
			}
		}
	}
	for typ := range router.Fields {
		if !seen[typ] {
			t.Errorf("allow-list entry %s is not exercised by the test configuration", typ)
		}
	}
	if tried < 100 {
		t.Errorf("only %d unsupported fields tried", tried)
	}
}

// TestRouteFieldValuesNACK: honoured fields with values the proxy does not
// implement are NACKed naming the field.
func TestRouteFieldValuesNACK(t *testing.T) {
	for _, c := range []struct {
		edit func(*route.RouteConfiguration)
		want string
	}{
		{func(rc *route.RouteConfiguration) { rc.ValidateClusters = wrapperspb.Bool(true) }, `route config "rc": validate_clusters true`},
		{func(rc *route.RouteConfiguration) { rc.VirtualHosts[0].RequireTls = route.VirtualHost_EXTERNAL_ONLY },
			`route config "rc": virtual host "vh": require_tls EXTERNAL_ONLY`},
		{func(rc *route.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].GetRoute().RetryPolicy.PerTryIdleTimeout = durationpb.New(time.Second)
		}, `route 0 ("fwd"): retry_policy: per_try_idle_timeout`},
		{func(rc *route.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[2].GetDirectResponse().Body = &core.DataSource{Specifier: &core.DataSource_Filename{Filename: "/etc/passwd"}}
		}, `route 2 ("direct"): direct_response.body.filename: not supported`},
	} {
		rc := fullRouteConfig(t)
		c.edit(rc)
		if _, err := router.Compile(rc); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, want one containing %q", err, c.want)
		}
	}
}
