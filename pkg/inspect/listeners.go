package inspect

import (
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
)

// The listener table is istioctl's (istio/istio
// istioctl/pkg/writer/envoy/configdump/listener.go PrintListenerSummary,
// verbose, its default): one row per filter chain, its match and where
// it goes.

// WriteListeners prints ADDRESSES PORT MATCH DESTINATION.
func WriteListeners(w io.Writer, listeners []*listener.Listener) error {
	ls := append([]*listener.Listener(nil), listeners...)
	sort.SliceStable(ls, func(i, j int) bool {
		if pi, pj := listenerPort(ls[i]), listenerPort(ls[j]); pi != pj {
			return pi < pj
		}
		if ai, aj := listenerAddress(ls[i]), listenerAddress(ls[j]); ai != aj {
			return ai < aj
		}
		return listenerType(ls[i]) < listenerType(ls[j])
	})
	tw := new(tabwriter.Writer).Init(w, 0, 8, 1, ' ', 0)
	fmt.Fprintln(tw, "ADDRESSES\tPORT\tMATCH\tDESTINATION")
	for _, l := range ls {
		addresses := []string{listenerAddress(l)}
		for _, a := range l.GetAdditionalAddresses() {
			addresses = append(addresses, a.GetAddress().GetSocketAddress().GetAddress())
		}
		type row struct{ match, destination string }
		var rows []row
		for _, fc := range filterChains(l) {
			rows = append(rows, row{chainMatch(fc.GetFilterChainMatch()), filterDestination(fc.GetFilters())})
		}
		sort.SliceStable(rows, func(i, j int) bool { return rows[i].destination > rows[j].destination })
		for _, r := range rows {
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\n", strings.Join(addresses, ","), listenerPort(l), r.match, r.destination)
		}
	}
	return tw.Flush()
}

func filterChains(l *listener.Listener) []*listener.FilterChain {
	res := append([]*listener.FilterChain(nil), l.GetFilterChains()...)
	if l.GetDefaultFilterChain() != nil {
		res = append(res, l.GetDefaultFilterChain())
	}
	return res
}

func listenerAddress(l *listener.Listener) string {
	if a := l.GetAddress().GetSocketAddress(); a != nil {
		return a.GetAddress()
	}
	return l.GetAddress().GetPipe().GetPath()
}

func listenerPort(l *listener.Listener) uint32 {
	return l.GetAddress().GetSocketAddress().GetPortValue()
}

// listenerType is HTTP, TCP, HTTP+TCP or UNKNOWN by the chains' filters
// (a tcp_proxy to the BlackHoleCluster does not count).
func listenerType(l *listener.Listener) string {
	nHTTP, nTCP := 0, 0
	for _, fc := range filterChains(l) {
		for _, f := range fc.GetFilters() {
			switch f.GetName() {
			case wellknown.HTTPConnectionManager:
				nHTTP++
			case wellknown.TCPProxy:
				if !strings.Contains(string(f.GetTypedConfig().GetValue()), "BlackHoleCluster") {
					nTCP++
				}
			}
		}
	}
	switch {
	case nHTTP > 0 && nTCP == 0:
		return "HTTP"
	case nHTTP > 0:
		return "HTTP+TCP"
	case nTCP > 0:
		return "TCP"
	}
	return "UNKNOWN"
}

// Application protocol sets istioctl names (listener.go protDescrs).
var protDescrs = []struct {
	name  string
	alpns []string
}{
	{"App: HTTP TLS", []string{"http/1.0", "http/1.1", "h2c", "istio-http/1.0", "istio-http/1.1", "istio-h2"}},
	{"App: Istio HTTP Plain", []string{"istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"}},
	{"App: TCP TLS", []string{"istio-peer-exchange", "istio"}},
	{"App: HTTP", []string{"http/1.0", "http/1.1", "h2c"}},
}

// chainMatch describes a filter chain match as istioctl's getMatches.
func chainMatch(m *listener.FilterChainMatch) string {
	if m == nil {
		m = &listener.FilterChainMatch{}
	}
	var descrs []string
	if len(m.GetServerNames()) > 0 {
		descrs = append(descrs, "SNI: "+strings.Join(m.GetServerNames(), ","))
	}
	if m.GetTransportProtocol() != "" {
		descrs = append(descrs, "Trans: "+m.GetTransportProtocol())
	}
	if len(m.GetApplicationProtocols()) > 0 {
		d := "App: " + strings.Join(m.GetApplicationProtocols(), ",")
		for _, p := range protDescrs {
			if reflect.DeepEqual(m.GetApplicationProtocols(), p.alpns) {
				d = p.name
				break
			}
		}
		descrs = append(descrs, d)
	}
	port := ""
	if m.GetDestinationPort() != nil {
		port = fmt.Sprintf(":%d", m.GetDestinationPort().GetValue())
	}
	if len(m.GetPrefixRanges()) > 0 {
		var pf []string
		for _, p := range m.GetPrefixRanges() {
			pf = append(pf, fmt.Sprintf("%s/%d", p.GetAddressPrefix(), p.GetPrefixLen().GetValue()))
		}
		descrs = append(descrs, fmt.Sprintf("Addr: %s%s", strings.Join(pf, ","), port))
	} else if port != "" {
		descrs = append(descrs, "Addr: *"+port)
	}
	if len(descrs) == 0 {
		return "ALL"
	}
	return strings.Join(descrs, "; ")
}

// filterDestination is where a chain's connection manager or TCP proxy
// sends traffic, as istioctl's getFilterType.
func filterDestination(filters []*listener.Filter) string {
	for _, f := range filters {
		switch f.GetName() {
		case wellknown.HTTPConnectionManager:
			h := &hcm.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
				return err.Error()
			}
			if h.GetRouteConfig() != nil {
				return describeRouteConfig(h.GetRouteConfig())
			}
			if n := h.GetRds().GetRouteConfigName(); n != "" {
				return "Route: " + n
			}
			return "HTTP"
		case wellknown.TCPProxy:
			if strings.Contains(string(f.GetTypedConfig().GetValue()), "BlackHoleCluster") {
				continue
			}
			t := &tcp.TcpProxy{}
			if err := f.GetTypedConfig().UnmarshalTo(t); err != nil {
				return err.Error()
			}
			if strings.Contains(t.GetCluster(), "Cluster") {
				return t.GetCluster()
			}
			return "Cluster: " + t.GetCluster()
		}
	}
	return "Non-HTTP/Non-TCP"
}

func describeRouteConfig(rc *route.RouteConfiguration) string {
	if c := matchAllCluster(rc); c != "" {
		return c
	}
	var vhosts []string
	for _, vh := range rc.GetVirtualHosts() {
		if d := describeDomains(vh); d == "" {
			vhosts = append(vhosts, describeRoutes(vh))
		} else {
			vhosts = append(vhosts, d+" "+describeRoutes(vh))
		}
	}
	return "Inline Route: " + strings.Join(vhosts, "; ")
}

func matchAllCluster(rc *route.RouteConfiguration) string {
	if len(rc.GetVirtualHosts()) != 1 {
		return ""
	}
	vh := rc.GetVirtualHosts()[0]
	if !reflect.DeepEqual(vh.GetDomains(), []string{"*"}) || len(vh.GetRoutes()) != 1 {
		return ""
	}
	r := vh.GetRoutes()[0]
	if r.GetMatch().GetPrefix() != "/" {
		return ""
	}
	c := r.GetRoute().GetCluster()
	switch {
	case c == "":
		return ""
	case strings.Contains(c, "Cluster"):
		return c
	}
	return "Cluster: " + c
}

func describeDomains(vh *route.VirtualHost) string {
	if len(vh.GetDomains()) == 1 && vh.GetDomains()[0] == "*" {
		return ""
	}
	return strings.Join(vh.GetDomains(), "/")
}

func describeRoutes(vh *route.VirtualHost) string {
	routes := make([]string, 0, len(vh.GetRoutes()))
	for _, r := range vh.GetRoutes() {
		routes = append(routes, describeMatch(r.GetMatch()))
	}
	return strings.Join(routes, ", ")
}

// describeMatch is istioctl's describeMatch (headers ignored).
func describeMatch(m *route.RouteMatch) string {
	var conds []string
	if m.GetPrefix() != "" {
		conds = append(conds, m.GetPrefix()+"*")
	}
	if m.GetPathSeparatedPrefix() != "" {
		conds = append(conds, "PathPrefix:"+m.GetPathSeparatedPrefix())
	}
	if m.GetPath() != "" {
		conds = append(conds, m.GetPath())
	}
	if m.GetSafeRegex() != nil {
		conds = append(conds, "regex "+m.GetSafeRegex().GetRegex())
	}
	// Not in istioctl, which prints nothing for it: sluice's CONNECT
	// routes (local mode's stand-in for captured TCP).
	if m.GetConnectMatcher() != nil {
		conds = append(conds, "CONNECT")
	}
	return strings.Join(conds, " ")
}
