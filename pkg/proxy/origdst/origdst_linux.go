package origdst

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSoOriginalDst is IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h),
// the same number as SO_ORIGINAL_DST at level SOL_IPV6.
const ip6tSoOriginalDst = 80

// get reads the original destination with one getsockopt: a sockaddr_in
// at SOL_IP/SO_ORIGINAL_DST for an IPv4 connection (also on a dual-stack
// socket, where the connection is IPv4-mapped: conntrack holds it as
// IPv4), a sockaddr_in6 at SOL_IPV6/IP6T_SO_ORIGINAL_DST for IPv6. The
// x/sys helpers whose structs hold a sockaddr at offset 0 read it
// (IPv6Mreq is 20 bytes, room for the 16 of a sockaddr_in;
// IPv6MTUInfo's first field is a RawSockaddrInet6).
func get(tc *net.TCPConn, v4 bool) (netip.AddrPort, error) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var out netip.AddrPort
	var gerr error
	cerr := rc.Control(func(fd uintptr) {
		if v4 {
			m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
			if err != nil {
				gerr = err
				return
			}
			raw := m.Multiaddr // sockaddr_in: family, port (network order), address
			port := binary.BigEndian.Uint16(raw[2:4])
			out = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[4:8])), port)
			return
		}
		info, err := unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, ip6tSoOriginalDst)
		if err != nil {
			gerr = err
			return
		}
		sa := info.Addr
		pb := (*[2]byte)(unsafe.Pointer(&sa.Port))
		out = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), binary.BigEndian.Uint16(pb[:]))
	})
	if cerr != nil {
		return netip.AddrPort{}, cerr
	}
	if gerr != nil {
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST: %w", gerr)
	}
	return out, nil
}
