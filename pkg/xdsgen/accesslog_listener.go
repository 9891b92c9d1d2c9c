package xdsgen

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/pkg/model"
)

// addListenerAccessLogs gives every bound listener Istio's listener
// access log (pilot/pkg/networking/core/accesslog.go
// setListenerAccessLog): the access logs of the listener's class, each
// filtered to connections no filter chain takes (listenerAccessLogFilter,
// response flag NR), joined in an and_filter with the log's own
// Telemetry filter (buildAccessLogFilter). None when MeshConfig's
// disableEnvoyListenerLog is set, or the class logs nothing.
//
// Istio puts it on inbound and gateway listeners and on the virtual
// outbound listener; sluice has no virtual outbound listener (local mode
// has no iptables capture), so each outbound listener, where a
// connection no chain takes is refused, carries it. Internal listeners
// have one chain that takes every connection and get none.
func (g *generation) addListenerAccessLogs() error {
	if g.push.Mesh.GetDisableEnvoyListenerLog() {
		return nil
	}
	for _, l := range g.out.Listeners {
		if l.GetInternalListener() != nil {
			continue
		}
		class := g.outboundClass()
		if l.TrafficDirection == core.TrafficDirection_INBOUND {
			class = model.ListenerClassSidecarInbound
		}
		als, err := g.accessLog(class)
		if err != nil {
			return err
		}
		l.AccessLog = listenerAccessLogs(als)
	}
	return nil
}

// listenerAccessLogs are als filtered to NR connections.
func listenerAccessLogs(als []*accesslogv3.AccessLog) []*accesslogv3.AccessLog {
	if len(als) == 0 {
		return nil
	}
	out := make([]*accesslogv3.AccessLog, 0, len(als))
	for _, al := range als {
		l := proto.Clone(al).(*accesslogv3.AccessLog)
		l.Filter = noChainFilter()
		if al.Filter != nil {
			l.Filter = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{
				AndFilter: &accesslogv3.AndFilter{Filters: []*accesslogv3.AccessLogFilter{noChainFilter(), proto.Clone(al.Filter).(*accesslogv3.AccessLogFilter)}},
			}}
		}
		out = append(out, l)
	}
	return out
}

// noChainFilter is Istio's listenerAccessLogFilter: NR, no filter chain
// found.
func noChainFilter() *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"NR"}},
	}}
}
