// Package model holds what the control plane knows at one push: the proxy
// asking for config and the immutable, indexed view of config and registry
// (PushContext) that generation reads.
package model

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/version"
)

// ProxyType is the role of a proxy, as Istio encodes it in the node ID.
type ProxyType string

// Proxy roles.
const (
	// Sidecar runs beside one workload: outbound to the mesh, inbound to the app.
	Sidecar ProxyType = "sidecar"
	// Router is a gateway: it serves the listeners Gateways give it.
	Router ProxyType = "router"
	// Ztunnel is a node proxy of the ambient mode (Istio's ztunnel; node
	// ID ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local). It is served
	// only the workload API (xdsgen wds*.go: Address and Authorization),
	// on delta streams, never CDS/LDS/RDS/EDS.
	Ztunnel ProxyType = "ztunnel"
)

// Node metadata keys. Istio's names are used where Istio has one.
const (
	MetaName            = "NAME"
	MetaNamespace       = "NAMESPACE"
	MetaLabels          = "LABELS"
	MetaInstanceIPs     = "INSTANCE_IPS"
	MetaOutboundAddress = "SLUICE_OUTBOUND_ADDRESS"
	// MetaInbound lists every inbound port as {inbound, app} pairs;
	// MetaInboundAddress and MetaAppAddress carry the first pair alone, as
	// proxies before the list did (and are still read when the list is
	// absent).
	MetaInbound        = "SLUICE_INBOUND"
	MetaInboundAddress = "SLUICE_INBOUND_ADDRESS"
	MetaAppAddress     = "SLUICE_APP_ADDRESS"
	MetaPortOffset     = "SLUICE_PORT_OFFSET"
	MetaBindAddress    = "SLUICE_BIND_ADDRESS"
	MetaOutboundTCPIP  = "SLUICE_OUTBOUND_TCP_IP"
	MetaServiceAccount = "SERVICE_ACCOUNT"
	// MetaAdminAddress is the proxy's admin endpoint (host:port), where
	// `sluice status` reads its connection counters.
	MetaAdminAddress = "SLUICE_ADMIN_ADDRESS"
	// MetaIstioVersion is the proxy's version, as Istio's agent announces
	// it (pilot/pkg/model/context.go NodeMetadata.IstioVersion): istiod's
	// pilot_xds{version} and istioctl proxy-status's VERSION read it.
	MetaIstioVersion = "ISTIO_VERSION"
	// MetaInterceptionMode is how the sidecar's traffic reaches it, as
	// Istio's agent announces it (NodeMetadata.InterceptionMode):
	// REDIRECT (iptables capture) or NONE; absent means NONE (local mode).
	MetaInterceptionMode = "INTERCEPTION_MODE"
)

// InterceptionMode is Istio's TrafficInterceptionMode
// (pilot/pkg/model/context.go): how inbound and outbound traffic reaches
// a sidecar.
type InterceptionMode string

// Interception modes. TPROXY, Istio's third, is not supported: a proxy
// announcing it is refused.
const (
	// InterceptionNone: no capture; the app addresses the sidecar's
	// listeners (local mode).
	InterceptionNone InterceptionMode = "NONE"
	// InterceptionRedirect: iptables REDIRECT sends outbound traffic to
	// the virtual outbound listener and inbound to the virtual inbound
	// one, which hand it on by its original destination.
	InterceptionRedirect InterceptionMode = "REDIRECT"
)

// Proxy is one connected proxy, as it announced itself.
type Proxy struct {
	ID        string
	Type      ProxyType
	Name      string
	Namespace string
	Labels    map[string]string
	IPs       []string
	// Locality is "region/zone/subzone".
	Locality string
	// OutboundAddress is where a sidecar's app sends outbound HTTP.
	OutboundAddress string
	// Inbound are the ports a sidecar serves for its workload, as a pod's
	// sidecar captures every port of its pod: traffic arriving at each
	// Address goes to its App.
	Inbound []InboundPort
	// PortOffset is added to every Gateway port a router listens on, so a
	// router can serve port 80 as 8080 without root (local mode).
	PortOffset int
	// BindAddress is the IP a router binds its Gateway listeners to; empty
	// means all addresses.
	BindAddress string
	// OutboundTCPIP, when set, gives a sidecar one outbound listener per
	// TCP/TLS service port P at OutboundTCPIP:P+PortOffset: with no
	// iptables, that address is how an app reaches a TCP service.
	OutboundTCPIP string
	// ServiceAccount names the workload's identity (default "default").
	ServiceAccount string
	// AdminAddress is the proxy's admin endpoint, when it announces one.
	AdminAddress string
	// IstioVersion is the version the proxy announces (ISTIO_VERSION);
	// Node sends sluice's own (version.Get) when it is empty.
	IstioVersion string
	// InterceptionMode is how traffic reaches a sidecar; empty is NONE.
	InterceptionMode InterceptionMode
}

// Captured reports whether the sidecar's traffic is captured (REDIRECT):
// it then gets Istio's capture layout (virtual outbound and inbound
// listeners handing connections on by original destination).
func (p *Proxy) Captured() bool { return p.InterceptionMode == InterceptionRedirect }

// InboundPort is one port of a sidecar's workload: where mesh traffic for
// it arrives (the address the WorkloadEntry's port map points at) and
// where the app listens.
type InboundPort struct {
	Address string
	App     string
}

// NodeID builds Istio's node ID: type~ip~name.namespace~namespace.svc.domain.
func (p *Proxy) NodeID() string {
	ip := "127.0.0.1"
	if len(p.IPs) > 0 {
		ip = p.IPs[0]
	}
	return fmt.Sprintf("%s~%s~%s.%s~%s.svc.%s", p.Type, ip, p.Name, p.Namespace, p.Namespace, meshconfig.DefaultClusterLocalDomain)
}

// Node is the xDS node a proxy sends on its stream.
func (p *Proxy) Node() *core.Node {
	labels := map[string]any{}
	for k, v := range p.Labels {
		labels[k] = v
	}
	fields := map[string]any{
		MetaName:            p.Name,
		MetaNamespace:       p.Namespace,
		MetaLabels:          labels,
		MetaInstanceIPs:     strings.Join(p.IPs, ","),
		MetaOutboundAddress: p.OutboundAddress,
		MetaPortOffset:      strconv.Itoa(p.PortOffset),
		MetaBindAddress:     p.BindAddress,
		MetaOutboundTCPIP:   p.OutboundTCPIP,
		MetaServiceAccount:  p.ServiceAccount,
		MetaIstioVersion:    p.IstioVersion,
	}
	if p.IstioVersion == "" {
		fields[MetaIstioVersion] = version.Get()
	}
	if p.AdminAddress != "" {
		fields[MetaAdminAddress] = p.AdminAddress
	}
	if p.InterceptionMode != "" {
		fields[MetaInterceptionMode] = string(p.InterceptionMode)
	}
	if len(p.Inbound) > 0 {
		list := make([]any, len(p.Inbound))
		for i, in := range p.Inbound {
			list[i] = map[string]any{"inbound": in.Address, "app": in.App}
		}
		fields[MetaInbound] = list
		fields[MetaInboundAddress] = p.Inbound[0].Address
		fields[MetaAppAddress] = p.Inbound[0].App
	}
	md, _ := structpb.NewStruct(fields) // only strings, lists and maps of strings: cannot fail
	n := &core.Node{Id: p.NodeID(), Cluster: p.Namespace, Metadata: md, UserAgentName: "sluice"}
	if loc := ParseLocality(p.Locality); loc != nil {
		n.Locality = loc
	}
	return n
}

// ProxyFromNode reads what a proxy announced about itself.
func ProxyFromNode(n *core.Node) (*Proxy, error) {
	if n == nil || n.Id == "" {
		return nil, fmt.Errorf("proxy: node has no id")
	}
	parts := strings.Split(n.Id, "~")
	if len(parts) != 4 {
		return nil, fmt.Errorf("proxy: node id %q is not type~ip~name.namespace~domain", n.Id)
	}
	p := &Proxy{ID: n.Id, Type: ProxyType(parts[0]), Labels: map[string]string{}}
	if p.Type != Sidecar && p.Type != Router && p.Type != Ztunnel {
		return nil, fmt.Errorf("proxy: node id %q: type %q is not sidecar, router or ztunnel", n.Id, parts[0])
	}
	if name, ns, ok := strings.Cut(parts[2], "."); ok {
		p.Name, p.Namespace = name, ns
	} else {
		p.Name = parts[2]
	}
	md := n.GetMetadata().GetFields()
	str := func(k string) string { return md[k].GetStringValue() }
	if v := str(MetaName); v != "" {
		p.Name = v
	}
	if v := str(MetaNamespace); v != "" {
		p.Namespace = v
	}
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	for k, v := range md[MetaLabels].GetStructValue().GetFields() {
		p.Labels[k] = v.GetStringValue()
	}
	if ips := str(MetaInstanceIPs); ips != "" {
		p.IPs = strings.Split(ips, ",")
	} else {
		p.IPs = []string{parts[1]}
	}
	p.OutboundAddress = str(MetaOutboundAddress)
	p.Inbound = inboundFromMetadata(md)
	p.BindAddress = str(MetaBindAddress)
	p.OutboundTCPIP = str(MetaOutboundTCPIP)
	p.ServiceAccount = str(MetaServiceAccount)
	p.AdminAddress = str(MetaAdminAddress)
	p.IstioVersion = str(MetaIstioVersion)
	if p.ServiceAccount == "" {
		p.ServiceAccount = "default"
	}
	if v := str(MetaPortOffset); v != "" {
		off, err := strconv.Atoi(v)
		if err != nil || off < 0 || off > 65535 {
			return nil, fmt.Errorf("proxy: node %q: %s %q is not a port offset", n.Id, MetaPortOffset, v)
		}
		p.PortOffset = off
	}
	p.Locality = LocalityString(n.GetLocality())
	if err := p.setInterceptionMode(str(MetaInterceptionMode)); err != nil {
		return nil, fmt.Errorf("proxy: node %q: %w", n.Id, err)
	}
	return p, nil
}

// setInterceptionMode reads INTERCEPTION_MODE: REDIRECT or NONE (or
// nothing). A captured sidecar has no local-mode outbound listeners: its
// outbound traffic arrives through the capture.
func (p *Proxy) setInterceptionMode(v string) error {
	switch InterceptionMode(v) {
	case "", InterceptionNone:
	case InterceptionRedirect:
		if p.Type != Sidecar {
			return fmt.Errorf("%s %s: only sidecars are captured", MetaInterceptionMode, v)
		}
		if p.OutboundAddress != "" || p.OutboundTCPIP != "" {
			return fmt.Errorf("%s %s: %s and %s must be empty (a captured sidecar's outbound traffic arrives through the capture)",
				MetaInterceptionMode, v, MetaOutboundAddress, MetaOutboundTCPIP)
		}
	default:
		return fmt.Errorf("%s %q: not supported (REDIRECT or NONE; TPROXY is not implemented)", MetaInterceptionMode, v)
	}
	p.InterceptionMode = InterceptionMode(v)
	return nil
}

// inboundFromMetadata reads the inbound list, or the single pair of the
// keys that came before it.
func inboundFromMetadata(md map[string]*structpb.Value) []InboundPort {
	if list := md[MetaInbound].GetListValue(); list != nil {
		out := make([]InboundPort, 0, len(list.Values))
		for _, v := range list.Values {
			f := v.GetStructValue().GetFields()
			out = append(out, InboundPort{Address: f["inbound"].GetStringValue(), App: f["app"].GetStringValue()})
		}
		return out
	}
	in, app := md[MetaInboundAddress].GetStringValue(), md[MetaAppAddress].GetStringValue()
	if in == "" && app == "" {
		return nil
	}
	return []InboundPort{{Address: in, App: app}}
}

// ParseLocality reads "region/zone/subzone" (any part may be empty).
func ParseLocality(s string) *core.Locality {
	if s == "" {
		return nil
	}
	parts := strings.SplitN(s, "/", 3)
	loc := &core.Locality{Region: parts[0]}
	if len(parts) > 1 {
		loc.Zone = parts[1]
	}
	if len(parts) > 2 {
		loc.SubZone = parts[2]
	}
	return loc
}

// LocalityString writes a locality as "region/zone/subzone".
func LocalityString(l *core.Locality) string {
	if l == nil || (l.Region == "" && l.Zone == "" && l.SubZone == "") {
		return ""
	}
	return strings.TrimRight(l.Region+"/"+l.Zone+"/"+l.SubZone, "/")
}

// LabelString renders labels as k=v,k=v in key order.
func LabelString(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + labels[k])
	}
	return b.String()
}
