package inspect

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	// The typed configs the generator puts in Any fields must be known
	// to decode a dump: the generator imports every one it uses.
	_ "github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// Config is a proxy's xDS as the control plane last published it.
type Config struct {
	Listeners []*listener.Listener
	Routes    []*route.RouteConfiguration
	Clusters  []*cluster.Cluster
	Endpoints []*endpoint.ClusterLoadAssignment
	// Raw are the resources as the dump holds them, per type URL, for
	// -o json|yaml.
	Raw map[string][]json.RawMessage
}

// DecodeConfig reads a control plane's /debug/config_dump answer.
func DecodeConfig(dump map[string]TypeDump) (*Config, error) {
	c := &Config{Raw: map[string][]json.RawMessage{}}
	for typeURL, td := range dump {
		c.Raw[typeURL] = td.Resources
		for i, raw := range td.Resources {
			var m proto.Message
			switch typeURL {
			case resourcev3.ListenerType:
				l := &listener.Listener{}
				c.Listeners, m = append(c.Listeners, l), l
			case resourcev3.RouteType:
				r := &route.RouteConfiguration{}
				c.Routes, m = append(c.Routes, r), r
			case resourcev3.ClusterType:
				cl := &cluster.Cluster{}
				c.Clusters, m = append(c.Clusters, cl), cl
			case resourcev3.EndpointType:
				e := &endpoint.ClusterLoadAssignment{}
				c.Endpoints, m = append(c.Endpoints, e), e
			default:
				continue
			}
			if err := protojson.Unmarshal(raw, m); err != nil {
				return nil, fmt.Errorf("config dump: %s resource %d: %w", typeURL, i, err)
			}
		}
	}
	return c, nil
}

// parseSubsetKey reads Istio's cluster name direction|port|subset|host
// (istio/istio pilot/pkg/model/service.go ParseSubsetKey); a name of
// another form is returned as the host with no port.
func parseSubsetKey(name string) (direction, subset, host string, port int) {
	parts := strings.Split(name, "|")
	if len(parts) < 4 {
		return "", "", name, 0
	}
	port, _ = strconv.Atoi(parts[1])
	return parts[0], parts[2], parts[3], port
}
