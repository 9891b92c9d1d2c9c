package dataplane

import (
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestHTTPInspectorCompile: the http_inspector is accepted in either
// order with the tls_inspector, shares the listener's
// listener_filters_timeout, sniffed ALPNs select Istio's auto chains; its
// fields and the listener filter fields sluice does not honour are NACKed.
func TestHTTPInspectorCompile(t *testing.T) {
	tlsF := func() *listener.ListenerFilter {
		a, _ := anypb.New(&tlsinspector.TlsInspector{})
		return &listener.ListenerFilter{Name: TLSInspectorName, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: a}}
	}
	httpF := func() *listener.ListenerFilter {
		a, _ := anypb.New(&httpinspector.HttpInspector{})
		return &listener.ListenerFilter{Name: HTTPInspectorName, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: a}}
	}
	sniffed := func(filters ...*listener.ListenerFilter) *listener.Listener {
		l := matchListener(
			namedChain(t, "http", &listener.FilterChainMatch{TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1", "h2c"}}),
			namedChain(t, "tcp", &listener.FilterChainMatch{TransportProtocol: "raw_buffer"}),
			namedChain(t, "tls", &listener.FilterChainMatch{TransportProtocol: "tls"}))
		l.ListenerFilters = filters
		l.ListenerFiltersTimeout = durationpb.New(0)
		l.ContinueOnListenerFiltersTimeout = true
		return l
	}
	for _, c := range []struct {
		filters   []*listener.ListenerFilter
		beforeTLS bool
	}{
		{[]*listener.ListenerFilter{tlsF(), httpF()}, false},
		{[]*listener.ListenerFilter{httpF(), tlsF()}, true},
		{[]*listener.ListenerFilter{httpF()}, false}, // the tls_inspector injected first
	} {
		l, err := compileListener(sniffed(c.filters...), nil)
		if err != nil {
			t.Fatal(err)
		}
		hi := l.HTTPInspector
		if hi == nil || hi.BeforeTLS != c.beforeTLS || hi.Timeout != 0 || !hi.ContinueOnTimeout || l.Inspector == nil || l.Inspector.Timeout != 0 {
			t.Errorf("filters %d: http inspector %+v, tls inspector %+v", len(c.filters), hi, l.Inspector)
		}
		for alpn, want := range map[string]string{"http/1.1": "http", "h2c": "http", "": "tcp", "http/1.0": "tcp"} {
			in := &MatchInput{Transport: TransportRawBuffer}
			if alpn != "" {
				in.ALPN = []string{alpn}
			}
			if got := l.Select(in); got == nil || got.StatPrefix != want {
				t.Errorf("sniffed %q: chain %v, want %s", alpn, got, want)
			}
		}
	}
	l, err := compileListener(matchListener(namedChain(t, "a", nil)), nil)
	if err != nil || l.HTTPInspector != nil || l.Inspector != nil {
		t.Errorf("no listener filters: %+v %+v %v", l.HTTPInspector, l.Inspector, err)
	}

	unknown, _ := anypb.New(&httpinspector.HttpInspector{})
	unknown.Value = protowire.AppendVarint(protowire.AppendTag(nil, 7, protowire.VarintType), 1)
	wrongType, _ := anypb.New(wrapperspb.String("x"))
	disabled := httpF()
	disabled.FilterDisabled = &listener.ListenerFilterChainMatchPredicate{}
	for _, c := range []struct {
		f    []*listener.ListenerFilter
		want string
	}{
		{[]*listener.ListenerFilter{{Name: HTTPInspectorName, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: unknown}}}, "fields unknown"},
		{[]*listener.ListenerFilter{{Name: HTTPInspectorName, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: wrongType}}}, HTTPInspectorName},
		{[]*listener.ListenerFilter{disabled}, "FilterDisabled"}, // validation: a rule is required
		{[]*listener.ListenerFilter{{Name: OriginalDstName, FilterDisabled: &listener.ListenerFilterChainMatchPredicate{
			Rule: &listener.ListenerFilterChainMatchPredicate_AnyMatch{AnyMatch: true}}}}, "filter_disabled: not supported"},
		{[]*listener.ListenerFilter{httpF(), httpF()}, "listed twice"},
		{[]*listener.ListenerFilter{{Name: HTTPInspectorName, ConfigType: &listener.ListenerFilter_ConfigDiscovery{ConfigDiscovery: &core.ExtensionConfigSource{
			ConfigSource: &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}},
			TypeUrls:     []string{"type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"}}}}}, "config_discovery"},
	} {
		_, err := compileListener(sniffed(c.f...), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err %v, want %q", err, c.want)
		}
	}
	timed := sniffed(tlsF(), httpF())
	timed.ListenerFiltersTimeout = durationpb.New(time.Second)
	timed.ContinueOnListenerFiltersTimeout = false
	if l, err := compileListener(timed, nil); err != nil || l.HTTPInspector.Timeout != time.Second || l.HTTPInspector.ContinueOnTimeout {
		t.Errorf("listener_filters_timeout not shared with the http_inspector: %+v %v", l.HTTPInspector, err)
	}
}
