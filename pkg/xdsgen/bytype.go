package xdsgen

import (
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// ByType is r as a proxy holds it after receiving it: per xDS type URL
// (resourcev3.ListenerType, ...), each resource by its name (an EDS
// ClusterLoadAssignment by its cluster name), the form of
// xdsclient.Resources.Items that dataplane.Compile reads.
func (r *Resources) ByType() map[string]map[string]proto.Message {
	items := map[string]map[string]proto.Message{
		resourcev3.ListenerType: {}, resourcev3.RouteType: {}, resourcev3.ClusterType: {}, resourcev3.EndpointType: {},
	}
	for _, l := range r.Listeners {
		items[resourcev3.ListenerType][l.Name] = l
	}
	for _, rc := range r.Routes {
		items[resourcev3.RouteType][rc.Name] = rc
	}
	for _, c := range r.Clusters {
		items[resourcev3.ClusterType][c.Name] = c
	}
	for _, e := range r.Endpoints {
		items[resourcev3.EndpointType][e.ClusterName] = e
	}
	return items
}
