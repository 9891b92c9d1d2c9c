// Package hostport splits and joins "host:port" strings the way the proxy
// and the generator meet them: request authorities (Host, :authority,
// redirect hosts), listen addresses ("0.0.0.0:15001", "[::1]:8080") and
// Envoy socket addresses. An IPv6 literal with a port is bracketed
// ("[::1]:80"); a bare IPv6 address ("::1") has no port.
//
// Unlike net.SplitHostPort, Split and StripPort accept a string without a
// port and keep the brackets of an IPv6 host, as an authority is matched
// and rewritten as written; none of them allocates.
package hostport

import (
	"fmt"
	"strconv"
	"strings"
)

// PortIndex returns the index of the ':' that starts s's port, or -1 when
// s has no port.
func PortIndex(s string) int {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return -1
	}
	if strings.HasPrefix(s, "[") {
		if j := strings.LastIndexByte(s, ']'); j > i || j < 0 {
			return -1 // "[::1]": the last ':' is inside the brackets
		}
	} else if strings.IndexByte(s, ':') != i {
		return -1 // a bare IPv6 address has no port
	}
	return i
}

// Split returns s's host, IPv6 brackets kept, and its port ("" when s has
// none).
func Split(s string) (host, port string) {
	if i := PortIndex(s); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// StripPort returns s without its ":port" (IPv6 brackets kept).
func StripPort(s string) string {
	if i := PortIndex(s); i >= 0 {
		return s[:i]
	}
	return s
}

// ParseAddr parses a listen address "host:port": the host without IPv6
// brackets, "0.0.0.0" when empty, and the port, which must be present.
func ParseAddr(addr string) (host string, port uint32, err error) {
	i := PortIndex(addr)
	if i < 0 {
		return "", 0, fmt.Errorf("address %q has no port", addr)
	}
	p, err := strconv.ParseUint(addr[i+1:], 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: bad port: %w", addr, err)
	}
	host = addr[:i]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	if strings.ContainsAny(host, "[]") {
		return "", 0, fmt.Errorf("address %q: malformed host %q", addr, addr[:i])
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, uint32(p), nil
}

// Join makes "host:port", bracketing an IPv6 host (one already bracketed
// is kept as it is), as net.Dial and net.Listen take it.
func Join(host string, port uint32) string {
	p := strconv.FormatUint(uint64(port), 10)
	bracketed := strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]")
	if strings.IndexByte(host, ':') >= 0 && !bracketed {
		return "[" + host + "]:" + p
	}
	return host + ":" + p
}
