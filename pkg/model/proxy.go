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
)

// ProxyType is the role of a proxy, as Istio encodes it in the node ID.
type ProxyType string

// Proxy roles.
const (
	// Sidecar runs beside one workload: outbound to the mesh, inbound to the app.
	Sidecar ProxyType = "sidecar"
	// Router is a gateway: it serves the listeners Gateways give it.
	Router ProxyType = "router"
)

// Node metadata keys. Istio's names are used where Istio has one.
const (
	MetaName            = "NAME"
	MetaNamespace       = "NAMESPACE"
	MetaLabels          = "LABELS"
	MetaInstanceIPs     = "INSTANCE_IPS"
	MetaOutboundAddress = "SLUICE_OUTBOUND_ADDRESS"
	MetaInboundAddress  = "SLUICE_INBOUND_ADDRESS"
	MetaAppAddress      = "SLUICE_APP_ADDRESS"
	MetaPortOffset      = "SLUICE_PORT_OFFSET"
	MetaBindAddress     = "SLUICE_BIND_ADDRESS"
	MetaOutboundTCPIP   = "SLUICE_OUTBOUND_TCP_IP"
	MetaServiceAccount  = "SERVICE_ACCOUNT"
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
	// InboundAddress is where a sidecar takes traffic for its app, and
	// AppAddress where the app listens.
	InboundAddress string
	AppAddress     string
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
		MetaInboundAddress:  p.InboundAddress,
		MetaAppAddress:      p.AppAddress,
		MetaPortOffset:      strconv.Itoa(p.PortOffset),
		MetaBindAddress:     p.BindAddress,
		MetaOutboundTCPIP:   p.OutboundTCPIP,
		MetaServiceAccount:  p.ServiceAccount,
	}
	md, _ := structpb.NewStruct(fields) // only strings and string maps: cannot fail
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
	if p.Type != Sidecar && p.Type != Router {
		return nil, fmt.Errorf("proxy: node id %q: type %q is not sidecar or router", n.Id, parts[0])
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
	p.InboundAddress = str(MetaInboundAddress)
	p.AppAddress = str(MetaAppAddress)
	p.BindAddress = str(MetaBindAddress)
	p.OutboundTCPIP = str(MetaOutboundTCPIP)
	p.ServiceAccount = str(MetaServiceAccount)
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
	return p, nil
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
