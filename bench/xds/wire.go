package main

import (
	"bytes"
	"errors"
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// The bench decodes only what it measures, so that its own CPU distorts
// the control plane's little: resource names, a cluster's EDS name, a
// listener's route names, and the one endpoint or weight it waits for.
// Names are read straight from the wire (field 1 is the name of a Cluster,
// Listener, RouteConfiguration and ClusterLoadAssignment alike); a
// malformed message fails the scan, so every resource is still checked to
// be a well-formed protobuf of the announced type.

// Field numbers read from the wire (envoy/config/cluster/v3/cluster.proto).
const (
	fieldName             = 1 // name / cluster_name
	fieldClusterType      = 2 // Cluster.type (oneof cluster_discovery_type)
	fieldEdsClusterConfig = 3 // Cluster.eds_cluster_config
	fieldEdsServiceName   = 2 // EdsClusterConfig.service_name
	clusterTypeEDS        = 3 // Cluster.DiscoveryType EDS
)

var (
	clusterType  = "type.googleapis.com/" + string((&cluster.Cluster{}).ProtoReflect().Descriptor().FullName())
	endpointType = "type.googleapis.com/" + string((&endpoint.ClusterLoadAssignment{}).ProtoReflect().Descriptor().FullName())
	listenerType = "type.googleapis.com/" + string((&listener.Listener{}).ProtoReflect().Descriptor().FullName())
	routeType    = "type.googleapis.com/" + string((&route.RouteConfiguration{}).ProtoReflect().Descriptor().FullName())
	vhostType    = "type.googleapis.com/" + string((&route.VirtualHost{}).ProtoReflect().Descriptor().FullName())
	hcmType      = "type.googleapis.com/" + string((&hcm.HttpConnectionManager{}).ProtoReflect().Descriptor().FullName())
)

// scanFields calls fn for every top-level field of a protobuf message,
// failing on malformed input.
func scanFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, n uint64)) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		var val []byte
		var n uint64
		switch typ {
		case protowire.BytesType:
			val, l = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			n, l = protowire.ConsumeVarint(b)
		default:
			l = protowire.ConsumeFieldValue(num, typ, b)
		}
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		fn(num, typ, val, n)
	}
	return nil
}

// resourceName reads field 1 (the name) of a resource.
func resourceName(b []byte) (string, error) {
	var name string
	err := scanFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) {
		if num == fieldName && typ == protowire.BytesType {
			name = string(v)
		}
	})
	if err == nil && name == "" {
		err = errors.New("resource has no name")
	}
	return name, err
}

// clusterEDSName returns a cluster's name and, for an EDS cluster, the
// name of its ClusterLoadAssignment (eds_cluster_config.service_name, else
// the cluster's name); "" for other clusters.
func clusterEDSName(b []byte) (name, eds string, err error) {
	var isEDS bool
	var service []byte
	err = scanFields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) {
		switch {
		case num == fieldName && typ == protowire.BytesType:
			name = string(v)
		case num == fieldClusterType && typ == protowire.VarintType:
			isEDS = n == clusterTypeEDS
		case num == fieldEdsClusterConfig && typ == protowire.BytesType:
			service = v
		}
	})
	if err != nil || !isEDS {
		return name, "", err
	}
	eds = name
	if service != nil {
		err = scanFields(service, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) {
			if num == fieldEdsServiceName && typ == protowire.BytesType && len(v) > 0 {
				eds = string(v)
			}
		})
	}
	return name, eds, err
}

// listenerRoutes decodes a listener and returns its name and the RDS
// route configurations its HTTP connection managers name.
func listenerRoutes(b []byte) (string, []string, error) {
	var l listener.Listener
	if err := proto.Unmarshal(b, &l); err != nil {
		return "", nil, err
	}
	chains := l.FilterChains
	if l.DefaultFilterChain != nil {
		chains = append(chains, l.DefaultFilterChain)
	}
	var routes []string
	for _, fc := range chains {
		for _, f := range fc.Filters {
			tc := f.GetTypedConfig()
			if tc.GetTypeUrl() != hcmType {
				continue
			}
			var m hcm.HttpConnectionManager
			if err := tc.UnmarshalTo(&m); err != nil {
				return "", nil, fmt.Errorf("listener %s: %w", l.Name, err)
			}
			if r := m.GetRds().GetRouteConfigName(); r != "" {
				routes = append(routes, r)
			}
		}
	}
	return l.Name, routes, nil
}

// hasEndpoint reports whether a ClusterLoadAssignment lists ip.
func hasEndpoint(b []byte, ip string) (bool, error) {
	if !bytes.Contains(b, []byte(ip)) {
		return false, nil
	}
	var cla endpoint.ClusterLoadAssignment
	if err := proto.Unmarshal(b, &cla); err != nil {
		return false, err
	}
	for _, le := range cla.Endpoints {
		for _, lb := range le.LbEndpoints {
			if lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress() == ip {
				return true, nil
			}
		}
	}
	return false, nil
}

// hasWeight reports whether a RouteConfiguration routes some request for
// host to cluster with the given weight. Only virtual hosts mentioning
// the host are decoded.
func hasWeight(b []byte, host, cluster string, weight uint32) (bool, error) {
	if !bytes.Contains(b, []byte(host)) {
		return false, nil
	}
	found := false
	var vhErr error
	err := scanFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) {
		const fieldVirtualHosts = 2 // RouteConfiguration.virtual_hosts
		if found || vhErr != nil || num != fieldVirtualHosts || typ != protowire.BytesType {
			return
		}
		found, vhErr = vhostHasWeight(v, host, cluster, weight)
	})
	if err == nil {
		err = vhErr
	}
	return found, err
}

// vhostHasWeight is hasWeight for one VirtualHost (a VHDS resource).
func vhostHasWeight(b []byte, host, cluster string, weight uint32) (bool, error) {
	if !bytes.Contains(b, []byte(host)) {
		return false, nil
	}
	var vh route.VirtualHost
	if err := proto.Unmarshal(b, &vh); err != nil {
		return false, err
	}
	for _, r := range vh.Routes {
		for _, c := range r.GetRoute().GetWeightedClusters().GetClusters() {
			if c.Name == cluster && c.GetWeight().GetValue() == weight {
				return true, nil
			}
		}
	}
	return false, nil
}

// routeVHDS reads a RouteConfiguration's name and whether its virtual
// hosts come by VHDS (its vhds field is set).
func routeVHDS(b []byte) (name string, vhds bool, err error) {
	const fieldVhds = 9 // RouteConfiguration.vhds
	err = scanFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) {
		switch {
		case num == fieldName && typ == protowire.BytesType:
			name = string(v)
		case num == fieldVhds && typ == protowire.BytesType:
			vhds = true
		}
	})
	if err == nil && name == "" {
		err = errors.New("route configuration without a name")
	}
	return name, vhds, err
}

// checkAny checks that a resource is of the response's type.
func checkAny(a *anypb.Any, typeURL string) error {
	if a.GetTypeUrl() != typeURL {
		return fmt.Errorf("resource of type %q in a %s response", a.GetTypeUrl(), typeURL)
	}
	return nil
}
