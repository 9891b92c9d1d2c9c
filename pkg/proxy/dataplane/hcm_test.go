package dataplane

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/proxy/pathnorm"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// baseHCM is a connection manager as sluice's xdsgen makes it.
func baseHCM() *hcm.HttpConnectionManager {
	return &hcm.HttpConnectionManager{StatPrefix: "s",
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: "r",
			ConfigSource: &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}}},
		HttpFilters:       []*hcm.HttpFilter{{Name: "envoy.filters.http.router"}},
		StreamIdleTimeout: durationpb.New(0), UseRemoteAddress: wrapperspb.Bool(false), GenerateRequestId: wrapperspb.Bool(true),
		NormalizePath: wrapperspb.Bool(true), PathWithEscapedSlashesAction: hcm.HttpConnectionManager_KEEP_UNCHANGED,
		UpgradeConfigs: []*hcm.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
	}
}

func compileHCMForTest(t *testing.T, m *hcm.HttpConnectionManager) (*FilterChain, error) {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	chain := &FilterChain{}
	err = compileHCM(&listener.Filter{Name: "envoy.filters.network.http_connection_manager",
		ConfigType: &listener.Filter_TypedConfig{TypedConfig: a}}, chain, core.TrafficDirection_OUTBOUND)
	return chain, err
}

// TestHCMUnsupportedFieldsNACK: every HttpConnectionManager field the
// proxy does not honour, set on an otherwise good connection manager, is
// NACKed with an error naming the field. The table is the proto itself,
// so a field added to go-control-plane is covered without editing this.
func TestHCMUnsupportedFieldsNACK(t *testing.T) {
	fields := (&hcm.HttpConnectionManager{}).ProtoReflect().Descriptor().Fields()
	n := 0
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if hcmFields[fd.Name()] {
			continue
		}
		n++
		m := baseHCM()
		xdsfields.SetSomething(m.ProtoReflect(), fd)
		_, err := compileHCMForTest(t, m)
		if err == nil || !strings.Contains(err.Error(), string(fd.Name())) {
			t.Errorf("%s set: err = %v, want a NACK naming the field", fd.Name(), err)
		}
	}
	if n < 40 {
		t.Errorf("only %d unsupported fields tried", n)
	}
}

// TestRouterFilterFieldsNACK: the router filter's options are all NACKed
// by name.
func TestRouterFilterFieldsNACK(t *testing.T) {
	fields := (&routerv3.Router{}).ProtoReflect().Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		r := &routerv3.Router{}
		xdsfields.SetSomething(r.ProtoReflect(), fd)
		a, err := anypb.New(r)
		if err != nil {
			t.Fatal(err)
		}
		m := baseHCM()
		m.HttpFilters = []*hcm.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: a}}}
		if _, err := compileHCMForTest(t, m); err == nil || !strings.Contains(err.Error(), string(fd.Name())) {
			t.Errorf("router %s set: err = %v, want a NACK naming the field", fd.Name(), err)
		}
	}
}

// TestHCMValuesNACK: honoured fields with values the proxy does not
// implement are NACKed naming the field.
func TestHCMValuesNACK(t *testing.T) {
	unknown := &hcm.HttpFilter{Name: "envoy.filters.http.lua"}
	for _, c := range []struct {
		field string
		edit  func(*hcm.HttpConnectionManager)
	}{
		{"codec_type", func(m *hcm.HttpConnectionManager) { m.CodecType = hcm.HttpConnectionManager_HTTP1 }},
		{"rds.config_source", func(m *hcm.HttpConnectionManager) {
			m.GetRds().ConfigSource = &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Path{Path: "/r.yaml"}}
		}},
		{"stream_idle_timeout", func(m *hcm.HttpConnectionManager) { m.StreamIdleTimeout = durationpb.New(5e9) }},
		{"use_remote_address", func(m *hcm.HttpConnectionManager) { m.UseRemoteAddress = wrapperspb.Bool(true) }},
		{"generate_request_id", func(m *hcm.HttpConnectionManager) { m.GenerateRequestId = wrapperspb.Bool(false) }},
		{"filters", func(m *hcm.HttpConnectionManager) {
			m.UpgradeConfigs = append(m.UpgradeConfigs, &hcm.HttpConnectionManager_UpgradeConfig{UpgradeType: "CONNECT",
				Filters: []*hcm.HttpFilter{{Name: "x"}}})
		}},
		{"filters", func(m *hcm.HttpConnectionManager) { m.UpgradeConfigs[0].Filters = []*hcm.HttpFilter{{Name: "x"}} }},
		{"envoy.filters.http.lua", func(m *hcm.HttpConnectionManager) {
			m.HttpFilters = append([]*hcm.HttpFilter{unknown}, m.HttpFilters...)
		}},
		{"disabled", func(m *hcm.HttpConnectionManager) { m.HttpFilters[0].Disabled = true }},
		{"last", func(m *hcm.HttpConnectionManager) {
			m.HttpFilters = append(m.HttpFilters, &hcm.HttpFilter{Name: "envoy.filters.http.cors"})
		}},
	} {
		m := baseHCM()
		c.edit(m)
		if _, err := compileHCMForTest(t, m); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: err = %v, want a NACK naming it", c.field, err)
		}
	}
}

// TestHCMHonoured: what xdsgen sets compiles into the chain.
func TestHCMHonoured(t *testing.T) {
	m := baseHCM()
	m.MergeSlashes = true
	m.PathWithEscapedSlashesAction = hcm.HttpConnectionManager_UNESCAPE_AND_FORWARD
	m.UpgradeConfigs = append(m.UpgradeConfigs, &hcm.HttpConnectionManager_UpgradeConfig{UpgradeType: "Spdy/3", Enabled: wrapperspb.Bool(false)},
		&hcm.HttpConnectionManager_UpgradeConfig{UpgradeType: "CONNECT"})
	m.HttpFilters = append([]*hcm.HttpFilter{{Name: "envoy.filters.http.lua", IsOptional: true}, {Name: "envoy.filters.http.cors"},
		{Name: "envoy.filters.http.fault"}}, m.HttpFilters...)
	chain, err := compileHCMForTest(t, m)
	if err != nil {
		t.Fatal(err)
	}
	if want := (pathnorm.Options{Normalize: true, MergeSlashes: true, EscapedSlashes: pathnorm.UnescapeAndForward}); chain.Path != want {
		t.Errorf("path options %+v, want %+v", chain.Path, want)
	}
	if !chain.Upgrades["websocket"] || chain.Upgrades["spdy/3"] || !chain.Upgrades["connect"] {
		t.Errorf("upgrades %v", chain.Upgrades)
	}
	var got []string
	for _, f := range chain.HTTPFilters {
		got = append(got, fmt.Sprintf("%T", f))
	}
	if want := []string{"cors.filter", "fault.filter", "router.filter"}; !slices.Equal(got, want) {
		t.Errorf("filters %v, want %v (the optional unknown one skipped)", got, want)
	}
}

// TestHTTPFiltersFromRegistry: http_filters go to the factory registered
// for their typed_config's type (else their name); what no factory takes
// is NACKed unless optional; the router must be last.
func TestHTTPFiltersFromRegistry(t *testing.T) {
	anyOf := func(m proto.Message) *hcm.HttpFilter_TypedConfig {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		return &hcm.HttpFilter_TypedConfig{TypedConfig: a}
	}
	router := &hcm.HttpFilter{Name: "envoy.filters.http.router", ConfigType: anyOf(&routerv3.Router{})}
	cases := []struct {
		name    string
		filters []*hcm.HttpFilter
		wantErr string // "" accepts
		want    []string
	}{
		{name: "by config type (Istio's)", filters: []*hcm.HttpFilter{
			{Name: "envoy.filters.http.fault", ConfigType: anyOf(&faultv3.HTTPFault{})},
			{Name: "envoy.filters.http.cors", ConfigType: anyOf(&corsv3.Cors{})}, router},
			want: []string{"fault.filter", "cors.filter", "router.filter"}},
		{name: "known type under another name", filters: []*hcm.HttpFilter{
			{Name: "my-cors", ConfigType: anyOf(&corsv3.Cors{})}, router}, wantErr: `"my-cors"`},
		{name: "unknown type", filters: []*hcm.HttpFilter{
			{Name: "envoy.filters.http.lua", ConfigType: anyOf(&structpb.Struct{})}, router}, wantErr: `"envoy.filters.http.lua" is not supported`},
		{name: "unknown type, optional", filters: []*hcm.HttpFilter{
			{Name: "envoy.filters.http.lua", ConfigType: anyOf(&structpb.Struct{}), IsOptional: true}, router},
			want: []string{"router.filter"}},
		{name: "known name, wrong config", filters: []*hcm.HttpFilter{
			{Name: "envoy.filters.http.fault", ConfigType: anyOf(&faultv3.HTTPFault{MaxActiveFaults: wrapperspb.UInt32(1)})}, router},
			wantErr: "max_active_faults"},
		{name: "router not last", filters: []*hcm.HttpFilter{router, {Name: "envoy.filters.http.cors"}}, wantErr: "last"},
		{name: "no router", filters: []*hcm.HttpFilter{{Name: "envoy.filters.http.cors"}}, wantErr: "no router filter"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := baseHCM()
			m.HttpFilters = tc.filters
			chain, err := compileHCMForTest(t, m)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range chain.HTTPFilters {
				got = append(got, fmt.Sprintf("%T", f))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("filters %v, want %v", got, tc.want)
			}
		})
	}
}

// TestXFCCCompile: forward_client_cert_details and
// set_current_client_cert_details compile to the mode and Envoy's detail
// order; issuer and a format other than TEXT are NACKed.
func TestXFCCCompile(t *testing.T) {
	m := baseHCM()
	m.ForwardClientCertDetails = hcm.HttpConnectionManager_APPEND_FORWARD
	m.SetCurrentClientCertDetails = &hcm.HttpConnectionManager_SetCurrentClientCertDetails{Subject: wrapperspb.Bool(true), Dns: true, Uri: true, Cert: true}
	chain, err := compileHCMForTest(t, m)
	if err != nil {
		t.Fatal(err)
	}
	want := []XFCCDetail{XFCCCert, XFCCSubject, XFCCURI, XFCCDNS}
	if x := chain.XFCC; x == nil || x.Mode != XFCCAppendForward || !slices.Equal(x.Details, want) {
		t.Errorf("xfcc %+v, want APPEND_FORWARD %v", chain.XFCC, want)
	}
	if chain, err := compileHCMForTest(t, baseHCM()); err != nil || chain.XFCC.Mode != XFCCSanitize {
		t.Errorf("default: %+v %v, want SANITIZE (Envoy's default)", chain.XFCC, err)
	}
	for _, d := range []*hcm.HttpConnectionManager_SetCurrentClientCertDetails{{Issuer: true}, {Format: hcm.HttpConnectionManager_ForwardClientCertFormat(1)}} {
		m := baseHCM()
		m.SetCurrentClientCertDetails = d
		if _, err := compileHCMForTest(t, m); err == nil || !strings.Contains(err.Error(), "issuer, format: not supported") {
			t.Errorf("%v: err %v", d, err)
		}
	}
}

// TestListenerUnsupportedFieldsNACK: every Listener field a socket
// listener does not honour (socket options, transparent, connection
// balancing, buffer limits, deprecated_v1, ...) is NACKed by name, never
// ignored. The table is the proto itself.
func TestListenerUnsupportedFieldsNACK(t *testing.T) {
	fields := (&listener.Listener{}).ProtoReflect().Descriptor().Fields()
	n := 0
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if listenerFields[fd.Name()] || fd.Name() == "internal_listener" {
			continue // internal listeners are checked by internal.go
		}
		n++
		l := &listener.Listener{Name: "l", Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: 1}}}}}
		xdsfields.SetSomething(l.ProtoReflect(), fd)
		_, err := compileListener(l, nil)
		if err == nil || !strings.Contains(err.Error(), string(fd.Name())) {
			t.Errorf("%s set: err = %v, want a NACK naming the field", fd.Name(), err)
		}
	}
	if n < 15 {
		t.Errorf("only %d unsupported fields tried", n)
	}
}
