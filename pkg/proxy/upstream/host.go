// Package upstream is the proxy's view of clusters: their hosts, how one is
// picked for a request, and the connection pools that reach them. Every
// host keeps one state record that balancing, limits and outlier detection
// all read and write.
package upstream

import (
	"sync/atomic"
)

// Host is one endpoint of a cluster and its live state. A Host outlives
// config pushes that keep its address, so counters and connection pools
// carry over.
type Host struct {
	// Address is "ip:port" (or "name:port" for DNS clusters).
	Address  string
	Weight   uint32
	Locality string
	Workload string

	// Active is the number of requests in flight to this host.
	Active atomic.Int64
	// Requests and Failures count completed requests and the ones that
	// failed at the connection level or with 5xx.
	Requests atomic.Uint64
	Failures atomic.Uint64
}
