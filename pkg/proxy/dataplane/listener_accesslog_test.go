package dataplane

import (
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestListenerAccessLogCompile: a listener access log filtered to NR
// (alone or in an and_filter) is compiled; one that would log served
// connections is refused (the proxy writes listener logs for
// connections no chain takes only), and so is one on an internal
// listener.
func TestListenerAccessLogCompile(t *testing.T) {
	file, err := anypb.New(&filev3.FileAccessLog{Path: t.TempDir() + "/l.log"})
	if err != nil {
		t.Fatal(err)
	}
	flags := func(f ...string) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
			ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: f}}}
	}
	and := func(fs ...*accesslogv3.AccessLogFilter) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{
			AndFilter: &accesslogv3.AndFilter{Filters: fs}}}
	}
	for _, c := range []struct {
		name   string
		filter *accesslogv3.AccessLogFilter
		ok     bool
	}{
		{"NR", flags("NR"), true},
		{"and(NR, UF)", and(flags("NR"), flags("UF")), true},
		{"unfiltered", nil, false},
		{"any flag", flags(), false},
		{"NR or UF", flags("NR", "UF"), false},
	} {
		l := hcmListener(t, core.TrafficDirection_INBOUND, nil)
		l.AccessLog = []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file",
			ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: file}, Filter: c.filter}}
		got, err := compileListener(l, nil)
		switch {
		case c.ok && (err != nil || len(got.AccessLog) != 1):
			t.Errorf("%s: %v", c.name, err)
		case !c.ok && (err == nil || !strings.Contains(err.Error(), "access_log[0]: a listener access log must be filtered to NR")):
			t.Errorf("%s: err %v, want the listener access log refused", c.name, err)
		}
	}
	internal := hcmListener(t, core.TrafficDirection_OUTBOUND, nil)
	internal.Address = nil
	internal.ListenerSpecifier = &listener.Listener_InternalListener{InternalListener: &listener.Listener_InternalListenerConfig{}}
	internal.AccessLog = []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: file}, Filter: flags("NR")}}
	if _, err := compileListener(internal, nil); err == nil || !strings.Contains(err.Error(), "internal_listener: access_log is not supported") {
		t.Errorf("internal listener: %v", err)
	}
}
