// Package upstream is the proxy's view of clusters: their hosts, how one is
// picked for a request, and the connection pools that reach them. Every
// host keeps one state record that balancing, limits and outlier detection
// all read and write.
package upstream

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// Host is one endpoint of a cluster and its live state. A Host outlives
// config pushes that keep its address, weight and locality, so counters,
// ejection state and connection pools carry over.
//
// The fields above the line are fixed once the host is built; everything
// below is live state, written with atomics on the request path or under
// the cluster's outlier lock (ejection bookkeeping, a rare event).
type Host struct {
	// Address is "ip:port" (or "name:port" for DNS clusters).
	Address  string
	Weight   uint32
	Locality string
	Workload string
	// Transport is how the host is reached when the cluster's
	// transport_socket_matches chose a transport for it (by its
	// envoy.transport_socket_match metadata); nil: the cluster's own.
	Transport *Transport

	// Active is the number of requests in flight to this host: what
	// least-request balancing compares and /clusters shows as rq_active.
	Active atomic.Int64
	// Requests counts completed requests; Failures the ones that failed at
	// the connection level or answered 5xx (rq_error).
	Requests atomic.Uint64
	Failures atomic.Uint64
	// Timeouts counts requests that ran out of time waiting for the host.
	Timeouts atomic.Uint64
	// CxActive and CxTotal count connections to this host (open now, ever
	// opened); CxConnectFail the connection attempts that failed.
	CxActive      atomic.Int64
	CxTotal       atomic.Uint64
	CxConnectFail atomic.Uint64

	// Outlier detection: consecutive error counters (reset by a success)
	// and the ejection flag pickers read.
	consec5xx     atomic.Uint32
	consecGateway atomic.Uint32
	consecLocal   atomic.Uint32
	ejected       atomic.Bool

	// Guarded by the owning cluster's outlier lock.
	numEjections   uint32 // ejections so far (admin)
	backoff        uint32 // ejection time multiplier
	lastEjection   time.Time
	lastUnejection time.Time
}

// Ejected reports whether outlier detection has ejected the host.
func (h *Host) Ejected() bool { return h.ejected.Load() }

// Healthy reports whether the host may take traffic outside panic mode.
func (h *Host) Healthy() bool { return !h.ejected.Load() }

// HostSnapshot is a consistent-enough copy of a host's state for admin
// output.
type HostSnapshot struct {
	Address, Locality, Workload string
	Weight                      uint32
	Active                      int64
	Requests, Failures          uint64
	Timeouts                    uint64
	CxActive                    int64
	CxTotal, CxConnectFail      uint64
	Ejected                     bool
	NumEjections                uint32
	Consecutive5xx              uint32
	ConsecutiveGateway          uint32
	ConsecutiveLocal            uint32
}

func stringBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
