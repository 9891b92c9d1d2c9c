package runtime

import (
	"fmt"
	"sort"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

// CompileOptions are the inputs of one compile.
type CompileOptions struct {
	Resources xdsclient.Resources
	// Previous is the runtime in force, whose hosts and pools are reused.
	Previous *Runtime
	Stats    *StatsStore
}

type validator interface{ ValidateAll() error }

// Compile builds a runtime. An error means the resources are invalid or use
// something sluice cannot honour; the caller NACKs and keeps Previous.
func Compile(opts CompileOptions) (*Runtime, xdsclient.Dependencies, error) {
	res := opts.Resources
	rt := &Runtime{
		Listeners: map[string]*Listener{},
		Routes:    map[string]*router.Table{},
		Clusters:  map[string]*upstream.Cluster{},
		Source:    res,
		Built:     time.Now(),
	}
	var deps xdsclient.Dependencies
	for name, msg := range res.Items[xdsclient.ListenerType] {
		l, err := compileListener(msg.(*listener.Listener))
		if err != nil {
			return nil, deps, fmt.Errorf("listener %q: %w", name, err)
		}
		rt.Listeners[name] = l
		deps.Routes = append(deps.Routes, l.RouteName)
	}
	for _, name := range deps.Routes {
		msg, ok := res.Items[xdsclient.RouteType][name]
		if !ok {
			rt.Warming = append(rt.Warming, "route "+name)
			continue
		}
		rc := msg.(*route.RouteConfiguration)
		if err := rc.ValidateAll(); err != nil {
			return nil, deps, fmt.Errorf("route %q: %w", name, err)
		}
		t, err := router.Compile(rc)
		if err != nil {
			return nil, deps, err
		}
		rt.Routes[name] = t
	}
	var prevClusters map[string]*upstream.Cluster
	if opts.Previous != nil {
		prevClusters = opts.Previous.Clusters
	}
	for name, msg := range res.Items[xdsclient.ClusterType] {
		c := msg.(*cluster.Cluster)
		if err := c.ValidateAll(); err != nil {
			return nil, deps, fmt.Errorf("cluster %q: %w", name, err)
		}
		edsName, err := checkCluster(c)
		if err != nil {
			return nil, deps, fmt.Errorf("cluster %q: %w", name, err)
		}
		var cla *endpoint.ClusterLoadAssignment
		if edsName != "" {
			deps.Endpoints = append(deps.Endpoints, edsName)
			m, ok := res.Items[xdsclient.EndpointType][edsName]
			if !ok {
				rt.Warming = append(rt.Warming, "endpoints "+edsName)
			} else {
				cla = m.(*endpoint.ClusterLoadAssignment)
				if err := cla.ValidateAll(); err != nil {
					return nil, deps, fmt.Errorf("endpoints %q: %w", edsName, err)
				}
			}
		} else {
			cla = c.LoadAssignment
		}
		uc, err := buildCluster(c, cla, prevClusters[name], opts.Stats)
		if err != nil {
			return nil, deps, fmt.Errorf("cluster %q: %w", name, err)
		}
		rt.Clusters[name] = uc
	}
	sort.Strings(deps.Endpoints)
	sort.Strings(deps.Routes)
	sort.Strings(rt.Warming)
	return rt, deps, nil
}

func hostForListen(h string) string {
	if h == "::" || (len(h) > 0 && h[0] != '[' && containsColon(h)) {
		return "[" + h + "]"
	}
	return h
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// checkCluster rejects what sluice does not implement yet and returns the
// EDS service name for EDS clusters.
func checkCluster(c *cluster.Cluster) (string, error) {
	if c.TransportSocket != nil || len(c.TransportSocketMatches) > 0 {
		return "", fmt.Errorf("transport_socket is not supported yet")
	}
	if c.CircuitBreakers != nil || c.OutlierDetection != nil || len(c.HealthChecks) > 0 {
		return "", fmt.Errorf("circuit_breakers, outlier_detection and health_checks are not supported yet")
	}
	switch c.GetType() {
	case cluster.Cluster_EDS:
		if c.LbPolicy != cluster.Cluster_ROUND_ROBIN {
			return "", fmt.Errorf("lb_policy %s is not supported yet", c.LbPolicy)
		}
		if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
			return n, nil
		}
		return c.Name, nil
	case cluster.Cluster_STATIC, cluster.Cluster_STRICT_DNS, cluster.Cluster_LOGICAL_DNS:
		if c.LbPolicy != cluster.Cluster_ROUND_ROBIN {
			return "", fmt.Errorf("lb_policy %s is not supported yet", c.LbPolicy)
		}
		return "", nil
	case cluster.Cluster_ORIGINAL_DST:
		return "", nil
	}
	if c.GetClusterType() != nil {
		return "", fmt.Errorf("custom cluster_type %q is not supported", c.GetClusterType().GetName())
	}
	return "", fmt.Errorf("cluster type %s is not supported", c.GetType())
}

func buildCluster(c *cluster.Cluster, cla *endpoint.ClusterLoadAssignment, prev *upstream.Cluster, stats *StatsStore) (*upstream.Cluster, error) {
	topts := upstream.TransportOptions{ConnectTimeout: c.GetConnectTimeout().AsDuration()}
	if topts.ConnectTimeout == 0 {
		topts.ConnectTimeout = 5 * time.Second // Envoy's default
	}
	if raw := c.TypedExtensionProtocolOptions["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; raw != nil {
		var po httpv3.HttpProtocolOptions
		if err := raw.UnmarshalTo(&po); err != nil {
			return nil, fmt.Errorf("http protocol options: %w", err)
		}
		if po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil {
			topts.HTTP2 = true
		}
	}
	uc := &upstream.Cluster{Name: c.Name, ConnectTimeout: topts.ConnectTimeout, HTTP2: topts.HTTP2, Stats: stats.Cluster(c.Name)}
	if prev != nil && prev.Transport != nil && prev.Transport.Options == topts {
		uc.Transport = prev.Transport
	} else {
		uc.Transport = upstream.NewTransport(topts)
	}
	if c.GetType() == cluster.Cluster_ORIGINAL_DST {
		uc.Kind = upstream.OriginalDst
		uc.OriginalDstHeader = c.GetOriginalDstLbConfig().GetHttpHeaderName()
		if !c.GetOriginalDstLbConfig().GetUseHttpHeader() {
			uc.OriginalDstHeader = ":authority"
		}
		return uc, nil
	}
	uc.Hosts = hostsOf(cla, prev)
	uc.Init()
	return uc, nil
}

// hostsOf turns an assignment into hosts, reusing the previous cluster's
// host records where address and weight are unchanged.
func hostsOf(cla *endpoint.ClusterLoadAssignment, prev *upstream.Cluster) []*upstream.Host {
	old := map[string]*upstream.Host{}
	if prev != nil {
		for _, h := range prev.Hosts {
			old[h.Address] = h
		}
	}
	var hosts []*upstream.Host
	for _, lle := range cla.GetEndpoints() {
		locality := localityString(lle.GetLocality())
		for _, lbe := range lle.GetLbEndpoints() {
			sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				continue
			}
			addr := fmt.Sprintf("%s:%d", hostForListen(sa.Address), sa.GetPortValue())
			weight := lbe.GetLoadBalancingWeight().GetValue()
			if weight == 0 {
				weight = 1
			}
			if h, ok := old[addr]; ok && h.Weight == weight && h.Locality == locality {
				hosts = append(hosts, h)
				continue
			}
			workload := lbe.GetMetadata().GetFilterMetadata()["istio"].GetFields()["workload"].GetStringValue()
			hosts = append(hosts, &upstream.Host{Address: addr, Weight: weight, Locality: locality, Workload: workload})
		}
	}
	return hosts
}

func localityString(l *core.Locality) string {
	if l == nil {
		return ""
	}
	s := l.Region + "/" + l.Zone + "/" + l.SubZone
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// Equal reports whether two resources are the same config.
func Equal(a, b proto.Message) bool { return proto.Equal(a, b) }
