package upstream

import (
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Kind is how a cluster finds its hosts.
type Kind uint8

// Cluster kinds, after Envoy's discovery types.
const (
	// Static: hosts come from config (STATIC, EDS, STRICT_DNS).
	Static Kind = iota
	// OriginalDst: the host is the request's own destination, taken from a
	// header (the authority in sluice's local mode).
	OriginalDst
)

// Cluster is an immutable compiled cluster. Its hosts' state and its
// transport are shared with the cluster it replaced when they are unchanged.
type Cluster struct {
	Name           string
	Kind           Kind
	Hosts          []*Host
	ConnectTimeout time.Duration
	HTTP2          bool
	// OriginalDstHeader names the header holding the destination for
	// OriginalDst clusters (":authority" means the Host).
	OriginalDstHeader string

	Transport *Transport
	Stats     *Stats

	rr    atomic.Uint64
	total uint64 // sum of weights when they differ, else 0
}

// Init precomputes picking state; call it once after filling the fields.
func (c *Cluster) Init() {
	c.total = 0
	equal := true
	for _, h := range c.Hosts {
		if h.Weight != c.Hosts[0].Weight {
			equal = false
		}
	}
	if !equal {
		for _, h := range c.Hosts {
			c.total += uint64(max(h.Weight, 1))
		}
	}
}

// Pick chooses a host by weighted round robin. It returns nil when the
// cluster has no hosts.
func (c *Cluster) Pick() *Host {
	n := len(c.Hosts)
	if n == 0 {
		return nil
	}
	i := c.rr.Add(1) - 1
	if c.total == 0 {
		return c.Hosts[i%uint64(n)]
	}
	slot := i % c.total
	for _, h := range c.Hosts {
		w := uint64(max(h.Weight, 1))
		if slot < w {
			return h
		}
		slot -= w
	}
	return c.Hosts[n-1]
}

// OriginalDestination is the host:port an OriginalDst cluster sends r to.
func (c *Cluster) OriginalDestination(r *http.Request) string {
	v := r.Host
	if c.OriginalDstHeader != "" && c.OriginalDstHeader != ":authority" && c.OriginalDstHeader != "host" {
		v = r.Header.Get(c.OriginalDstHeader)
	}
	if v == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		port := 80
		if r.TLS != nil {
			port = 443
		}
		v = net.JoinHostPort(v, strconv.Itoa(port))
	}
	return v
}
