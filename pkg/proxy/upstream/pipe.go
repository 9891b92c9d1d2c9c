package upstream

import (
	"net"
	"strings"
)

// pipePrefix marks a host that is a unix domain socket (an Envoy pipe
// address, e.g. a Sidecar ingress defaultEndpoint unix:///var/run/app.sock).
const pipePrefix = "unix:"

// PipeAddress is the host address of a unix domain socket at path. It
// stands where host:port stands (requests' URL host, the pool key, admin
// output); the transport dials the socket for it.
func PipeAddress(path string) string { return pipePrefix + path }

// pipePath reads a PipeAddress back, both as given and as net/http hands
// it to DialContext (with a default port added: "[unix:/p]:80").
func pipePath(addr string) (string, bool) {
	if path, ok := strings.CutPrefix(addr, pipePrefix); ok {
		return path, true
	}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return strings.CutPrefix(host, pipePrefix)
	}
	return "", false
}
