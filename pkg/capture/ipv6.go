package capture

import (
	"net"
	"net/netip"
)

// DetectIPv6 is Istio's getLocalIP (tools/common/config/config.go): IPv6
// rules are built when the first address that is not loopback or
// link-local is IPv6, or, with dualStack, when any such address is.
func DetectIPv6(dualStack bool) (bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() {
			continue
		}
		if !dualStack || ip.Is6() {
			return ip.Is6(), nil
		}
	}
	return false, nil
}
