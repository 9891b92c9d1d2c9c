package dataplane

import (
	"fmt"
	"net/netip"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// bindSource reads a cluster's upstream_bind_config: the address every
// upstream connection is bound to before it connects (Envoy's
// BindConfig.source_address). Istio binds its inbound passthrough
// clusters to 127.0.0.6, which the capture rules let through
// (ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN), so the proxy's
// connection to its own workload is not redirected back to it. Only an
// IP source address with port 0 is supported; the rest is refused by name.
func bindSource(bc *core.BindConfig) (netip.Addr, error) {
	if bad := xdsfields.Unsupported(bc, map[protoreflect.Name]bool{"source_address": true}); len(bad) > 0 {
		return netip.Addr{}, fmt.Errorf("upstream_bind_config: %s: not supported", strings.Join(bad, ", "))
	}
	sa := bc.GetSourceAddress()
	if sa == nil {
		return netip.Addr{}, fmt.Errorf("upstream_bind_config: source_address: required")
	}
	if bad := xdsfields.Unsupported(sa, map[protoreflect.Name]bool{"address": true, "port_value": true, "protocol": true}); len(bad) > 0 {
		return netip.Addr{}, fmt.Errorf("upstream_bind_config: source_address: %s: not supported", strings.Join(bad, ", "))
	}
	if sa.GetPortValue() != 0 {
		return netip.Addr{}, fmt.Errorf("upstream_bind_config: source_address: port_value %d: not supported (port 0 only)", sa.GetPortValue())
	}
	if sa.Protocol != core.SocketAddress_TCP {
		return netip.Addr{}, fmt.Errorf("upstream_bind_config: source_address: protocol %s: not supported", sa.Protocol)
	}
	ip, err := netip.ParseAddr(sa.Address)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("upstream_bind_config: source_address: %w", err)
	}
	return ip.Unmap(), nil
}
