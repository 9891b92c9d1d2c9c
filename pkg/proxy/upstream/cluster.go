package upstream

import (
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
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

// LBPolicy is how a host is chosen.
type LBPolicy uint8

// Policies, after Envoy's lb_policy.
const (
	RoundRobin LBPolicy = iota
	LeastRequest
	Random
	RingHash
	Maglev
)

func (p LBPolicy) isHash() bool { return p == RingHash || p == Maglev }

func (p LBPolicy) String() string {
	switch p {
	case LeastRequest:
		return "LEAST_REQUEST"
	case Random:
		return "RANDOM"
	case RingHash:
		return "RING_HASH"
	case Maglev:
		return "MAGLEV"
	}
	return "ROUND_ROBIN"
}

// LBConfig is a cluster's balancing configuration.
type LBConfig struct {
	Policy LBPolicy
	// ChoiceCount is least request's sample size (2: power of two choices).
	ChoiceCount int
	// MinRingSize and MaxRingSize bound the ring hash ring; TableSize is
	// the maglev table size (a prime).
	MinRingSize, MaxRingSize, TableSize uint64
	// LocalityWeighted picks a locality by weight first (Envoy's
	// locality_weighted_lb_config).
	LocalityWeighted bool
	// PanicThreshold is the healthy percentage under which a priority
	// balances over all its hosts (Envoy's healthy_panic_threshold).
	PanicThreshold float64
	// OverprovisioningFactor is a percentage (140: 1.4).
	OverprovisioningFactor uint32
}

// Cluster is an immutable compiled cluster. Its hosts, their state, its
// transport and its live limits and outlier bookkeeping are shared with
// the cluster it replaced when they are unchanged.
type Cluster struct {
	Name string
	Kind Kind
	// Hosts are all hosts of all priorities; Priorities groups them.
	Hosts      []*Host
	Priorities []PriorityLevel
	// HostPriority is each host's priority, by index in Hosts.
	HostPriority []uint32

	ConnectTimeout time.Duration
	HTTP2          bool
	// UseDownstreamProtocol sends HTTP/2 requests as h2c and others as
	// HTTP/1.1.
	UseDownstreamProtocol bool
	// OriginalDstHeader names the header holding the destination for
	// OriginalDst clusters (":authority" means the Host).
	OriginalDstHeader string

	LB      LBConfig
	Limits  Thresholds
	Outlier *OutlierConfig
	// Clock is outlier detection's time source (nil: the wall clock).
	Clock Clock

	Transport *Transport
	// Transports are every transport the cluster's hosts use: Transport
	// and those its transport_socket_matches chose for some host.
	Transports []*Transport
	Stats      *Stats

	live     *live
	state    atomic.Pointer[lbState]
	rebuild  sync.Mutex
	initDone bool
}

// Init precomputes balancing state; call it once after filling the fields.
// prev is the cluster this one replaces (same name), whose live limits and
// outlier bookkeeping carry over; nil for a new cluster.
func (c *Cluster) Init(prev *Cluster) {
	if prev != nil && prev.live != nil {
		c.live = prev.live
	} else {
		c.live = &live{}
	}
	if c.Stats == nil {
		c.Stats = &Stats{}
	}
	if c.Limits == (Thresholds{}) {
		c.Limits = DefaultThresholds()
	}
	th := c.Limits
	c.Stats.thresholds.Store(&th)
	if c.Priorities == nil && len(c.Hosts) > 0 {
		c.Priorities = []PriorityLevel{{Localities: []LocalityHosts{{Hosts: c.Hosts, Weight: 1}}}}
	}
	if c.Hosts == nil {
		for _, pl := range c.Priorities {
			for _, l := range pl.Localities {
				c.Hosts = append(c.Hosts, l.Hosts...)
			}
		}
	}
	if c.HostPriority == nil {
		c.HostPriority = make([]uint32, 0, len(c.Hosts))
		for p, pl := range c.Priorities {
			for _, l := range pl.Localities {
				for range l.Hosts {
					c.HostPriority = append(c.HostPriority, uint32(p))
				}
			}
		}
	}
	if c.LB.PanicThreshold < 0 {
		c.LB.PanicThreshold = 0
	}
	if c.Outlier != nil {
		l := &c.live.outlier
		now := c.clock().Now()
		if next := l.nextTick.Load(); next == 0 || time.Duration(next-now.UnixNano()) > c.Outlier.Interval {
			l.nextTick.Store(now.Add(c.Outlier.Interval).UnixNano())
		}
	}
	if c.Transport != nil && len(c.Transports) == 0 {
		c.Transports = []*Transport{c.Transport}
	}
	for _, t := range c.Transports {
		t.SetHosts(c.Hosts)
	}
	c.storeState(c.live.outlier.gen.Load())
	c.initDone = true
}

func (c *Cluster) storeState(gen uint64) *lbState {
	st := c.buildState(gen)
	c.state.Store(st)
	c.Stats.MembershipTotal.Store(int64(st.total))
	c.Stats.MembershipHealthy.Store(int64(st.healthy))
	ejected := 0
	for _, h := range c.Hosts {
		if h.Ejected() {
			ejected++
		}
	}
	c.Stats.OutlierActive.Store(int64(ejected))
	return st
}

// current returns the balancing state, rebuilding it when host health
// changed since it was built.
func (c *Cluster) current() *lbState {
	st := c.state.Load()
	if st == nil {
		c.rebuild.Lock()
		defer c.rebuild.Unlock()
		if st = c.state.Load(); st == nil {
			st = c.storeState(c.live.outlier.gen.Load())
		}
		return st
	}
	if gen := c.live.outlier.gen.Load(); st.gen != gen {
		// One request rebuilds; the others keep picking from the state
		// they have until it is swapped in (as Envoy's workers do until
		// the main thread's update reaches them).
		if !c.rebuild.TryLock() {
			return st
		}
		defer c.rebuild.Unlock()
		if st = c.state.Load(); st.gen != gen {
			st = c.storeState(gen)
		}
	}
	return st
}

// Pick chooses a host for a request: a priority by the priority loads, a
// locality by weight when locality weighted, then a host by the cluster's
// policy. With in.Avoid set it re-picks (up to in.MaxSelectAttempts) to
// find a host not in it, as Envoy's previous_hosts retry predicate does.
// It returns nil when no host can take the request.
func (c *Cluster) Pick(in *PickInput) *Host {
	if c.Outlier != nil {
		c.tick()
	}
	if c.live == nil {
		c.Init(nil)
	}
	st := c.current()
	hashed := c.LB.Policy.isHash()
	attempts := 1
	if in != nil && len(in.Avoid) > 0 && in.MaxSelectAttempts > 1 {
		attempts = in.MaxSelectAttempts
	}
	var key hashKey
	var exclude uint64
	if in != nil {
		key = hashKey{v: in.Hash, ok: in.HasHash}
		exclude = in.ExcludePriorities
	}
	var h *Host
	var panicked bool
	for a := 0; a < attempts; a++ {
		h, panicked = st.pickOnce(key, uint32(a), hashed, exclude)
		if h == nil || in == nil || !in.avoids(h) {
			break
		}
	}
	if panicked {
		c.Stats.LbHealthyPanic.Add(1)
	}
	return h
}

// TransportFor is how host h is reached: the transport its
// transport_socket_matches entry chose, else the cluster's.
func (c *Cluster) TransportFor(h *Host) *Transport {
	if h != nil && h.Transport != nil {
		return h.Transport
	}
	return c.Transport
}

// PriorityOf returns the priority of the host at index i of Hosts.
func (c *Cluster) PriorityOf(i int) uint32 {
	if i < len(c.HostPriority) {
		return c.HostPriority[i]
	}
	return 0
}

// Snapshot copies a host's state for admin output.
func (c *Cluster) Snapshot(h *Host) HostSnapshot {
	s := HostSnapshot{
		Address: h.Address, Locality: h.Locality, Workload: h.Workload, Weight: h.Weight,
		Active: h.Active.Load(), Requests: h.Requests.Load(), Failures: h.Failures.Load(),
		Timeouts: h.Timeouts.Load(), CxActive: h.CxActive.Load(), CxTotal: h.CxTotal.Load(),
		CxConnectFail: h.CxConnectFail.Load(), Ejected: h.Ejected(),
		Consecutive5xx: h.consec5xx.Load(), ConsecutiveGateway: h.consecGateway.Load(),
		ConsecutiveLocal: h.consecLocal.Load(),
	}
	if c.live != nil {
		c.live.outlier.mu.Lock()
		s.NumEjections = h.numEjections
		c.live.outlier.mu.Unlock()
	}
	return s
}

// OriginalDestination is the host:port an OriginalDst cluster sends r to.
// restored is the downstream connection's original destination when the
// listener restored it from a redirected connection (capture), else "".
// As Envoy's original_dst cluster: with use_http_header, the header's
// value, else the restored destination; without, the restored
// destination. Local mode has none, so without use_http_header the
// request's authority stands in for it (docs/architecture.md, Local mode).
func (c *Cluster) OriginalDestination(r *http.Request, restored string) string {
	header := c.OriginalDstHeader != "" && c.OriginalDstHeader != ":authority" && c.OriginalDstHeader != "host"
	if restored != "" && !header {
		return restored
	}
	v := r.Host
	if header {
		if v = r.Header.Get(c.OriginalDstHeader); v == "" {
			return restored
		}
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

func randIntN(n int) int { return rand.IntN(n) }

// UsesHash reports whether the cluster balances by a request hash key
// (ring hash, maglev), so the route's hash policy must be evaluated.
func (c *Cluster) UsesHash() bool { return c.LB.Policy.isHash() }
