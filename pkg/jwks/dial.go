package jwks

import (
	"fmt"
	"net/netip"
	"syscall"
)

// blockedAddressControl refuses connections to link-local addresses and
// the cloud metadata endpoints, as istiod's jwksBlockedIP does: a
// jwksUri must not turn the control plane into a proxy to instance
// credentials.
func blockedAddressControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil
	}
	ip := ap.Addr().Unmap()
	if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() {
		return fmt.Errorf("connection blocked: %s is link-local", ip)
	}
	if metadataAddresses[ip] {
		return fmt.Errorf("connection blocked: %s is a cloud metadata address", ip)
	}
	return nil
}

// metadataAddresses are well-known cloud metadata endpoints outside
// 169.254.0.0/16 (Alibaba's 100.100.100.200, AWS's IPv6 fd00:ec2::254).
var metadataAddresses = map[netip.Addr]bool{
	netip.MustParseAddr("100.100.100.200"): true,
	netip.MustParseAddr("fd00:ec2::254"):   true,
}
