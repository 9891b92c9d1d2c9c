package upstream

import (
	"sync"
	"sync/atomic"
	"time"
)

// Outlier detection, after Envoy's consecutive-error detector:
//
//   - Each answer from a host is recorded. Without split_external_local_
//     origin_errors a connect failure counts as a 503 and a timeout as a
//     504; with it they count only towards consecutive_local_origin_
//     failure, and connecting resets that count.
//   - A 5xx adds to the consecutive 5xx count, a 502/503/504 also to the
//     consecutive gateway count; anything else resets both. Reaching a
//     threshold ejects the host — if ejecting one more keeps the ejected
//     share within max_ejection_percent, and if that kind of ejection is
//     enforced.
//   - An ejected host stays out for base_ejection_time × its ejection
//     multiplier (capped by max_ejection_time). The multiplier grows by one
//     with each ejection and shrinks by one for every interval the host
//     stays in. Hosts come back at the first interval tick after their time
//     is up, with their error counts reset.
//
// Envoy runs the interval on a timer; sluice runs it lazily, on the first
// request (or admin read) after each interval boundary, so an idle cluster
// costs nothing. Success-rate and failure-percentage detection are not
// implemented; configs that enforce them are rejected.

// Envoy's outlier detection defaults.
const (
	DefaultOutlierInterval         = 10 * time.Second
	DefaultBaseEjectionTime        = 30 * time.Second
	DefaultMaxEjectionTime         = 300 * time.Second
	DefaultConsecutive5xx          = 5
	DefaultConsecutiveGateway      = 5
	DefaultConsecutiveLocalOrigin  = 5
	DefaultMaxEjectionPercent      = 10
	DefaultEnforcingConsecutive5xx = 100
)

// OutlierConfig is a cluster's outlier detection.
type OutlierConfig struct {
	Interval         time.Duration
	BaseEjectionTime time.Duration
	MaxEjectionTime  time.Duration
	// MaxEjectionPercent bounds the share of the cluster's hosts ejected at
	// once.
	MaxEjectionPercent uint32
	// AlwaysEjectOneHost lets one host be ejected whatever the percentage.
	AlwaysEjectOneHost bool

	Consecutive5xx, Consecutive5xxEnforcing         uint32
	ConsecutiveGateway, ConsecutiveGatewayEnforcing uint32
	SplitLocalOrigin                                bool
	ConsecutiveLocal, ConsecutiveLocalEnforcing     uint32
}

// Outcome is what one request to a host came to, for outlier detection.
type Outcome uint8

// Outcomes.
const (
	// OutcomeResponse: the host answered; the status code says how.
	OutcomeResponse Outcome = iota
	// OutcomeConnectFailed: no connection could be made (or the connection
	// was reset before a response: Envoy records both as connect failed).
	OutcomeConnectFailed
	// OutcomeTimeout: the host did not answer in time.
	OutcomeTimeout
)

// Clock is the time source of outlier detection; tests inject one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// RealClock is the wall clock.
var RealClock Clock = realClock{}

// outlierLive is the detector's state shared across config pushes.
type outlierLive struct {
	mu sync.Mutex
	// gen changes whenever a host is ejected or returns; a cluster whose
	// balancing state was built for another gen rebuilds it.
	gen atomic.Uint64
	// nextTick is when the next interval runs (UnixNano of the clock).
	nextTick atomic.Int64
}

// Record feeds one request's outcome at host h into outlier detection.
// code is the response status for OutcomeResponse.
func (c *Cluster) Record(h *Host, o Outcome, code int) {
	od := c.Outlier
	if od == nil || h == nil {
		return
	}
	if od.SplitLocalOrigin {
		switch o {
		case OutcomeConnectFailed, OutcomeTimeout:
			if n := h.consecLocal.Add(1); od.ConsecutiveLocal > 0 && n == od.ConsecutiveLocal {
				c.consecutiveError(h, ejectLocal)
			}
			return
		}
		h.consecLocal.Store(0)
	} else {
		switch o {
		case OutcomeConnectFailed:
			code = 503
		case OutcomeTimeout:
			code = 504
		}
	}
	if code >= 500 && code <= 599 {
		if code >= 502 && code <= 504 {
			if n := h.consecGateway.Add(1); od.ConsecutiveGateway > 0 && n == od.ConsecutiveGateway {
				c.consecutiveError(h, ejectGateway)
			}
		} else {
			h.consecGateway.Store(0)
		}
		if n := h.consec5xx.Add(1); od.Consecutive5xx > 0 && n == od.Consecutive5xx {
			c.consecutiveError(h, eject5xx)
		}
		return
	}
	if h.consec5xx.Load() != 0 {
		h.consec5xx.Store(0)
	}
	if h.consecGateway.Load() != 0 {
		h.consecGateway.Store(0)
	}
}

type ejectKind uint8

const (
	eject5xx ejectKind = iota
	ejectGateway
	ejectLocal
)

// consecutiveError handles a host reaching a consecutive error threshold.
func (c *Cluster) consecutiveError(h *Host, kind ejectKind) {
	od, st := c.Outlier, c.Stats
	l := &c.live.outlier
	l.mu.Lock()
	defer l.mu.Unlock()
	if h.ejected.Load() {
		return
	}
	enforcing := od.Consecutive5xxEnforcing
	switch kind {
	case eject5xx:
		st.OutlierDetected5xx.Add(1)
	case ejectGateway:
		st.OutlierDetectedGateway.Add(1)
		enforcing = od.ConsecutiveGatewayEnforcing
	case ejectLocal:
		st.OutlierDetectedLocal.Add(1)
		enforcing = od.ConsecutiveLocalEnforcing
	}
	c.eject(h, kind, enforcing)
	// Reset the count that fired so a new bout is needed to fire again.
	switch kind {
	case eject5xx:
		h.consec5xx.Store(0)
		st.OutlierConsecutive5xx.Add(1)
	case ejectGateway:
		h.consecGateway.Store(0)
	case ejectLocal:
		h.consecLocal.Store(0)
	}
}

// eject ejects h if max_ejection_percent allows; l.mu is held.
func (c *Cluster) eject(h *Host, kind ejectKind, enforcing uint32) {
	od, st := c.Outlier, c.Stats
	active := 0
	for _, x := range c.Hosts {
		if x.ejected.Load() {
			active++
		}
	}
	allowed := len(c.Hosts) > 0 && 100*float64(active+1)/float64(len(c.Hosts)) <= float64(min(od.MaxEjectionPercent, 100))
	if od.AlwaysEjectOneHost && active == 0 {
		allowed = true
	}
	if !allowed {
		st.OutlierOverflow.Add(1)
		return
	}
	if kind == eject5xx {
		st.OutlierTotal.Add(1) // deprecated ejections_total
	}
	if enforcing < 100 && (enforcing == 0 || uint32(randIntN(100)) >= enforcing) {
		return
	}
	now := c.clock().Now()
	h.numEjections++
	h.lastEjection = now
	if time.Duration(h.backoff)*od.BaseEjectionTime < od.MaxEjectionTime+od.BaseEjectionTime {
		h.backoff++
	}
	h.ejected.Store(true)
	st.OutlierEnforcedTotal.Add(1)
	switch kind {
	case eject5xx:
		st.OutlierEnforced5xx.Add(1)
	case ejectGateway:
		st.OutlierEnforcedGateway.Add(1)
	case ejectLocal:
		st.OutlierEnforcedLocal.Add(1)
	}
	st.OutlierActive.Store(int64(active + 1))
	c.live.outlier.gen.Add(1)
}

// tick runs the outlier interval if it is due: it brings back hosts whose
// ejection time is up and shrinks the multiplier of hosts that stayed in.
func (c *Cluster) tick() {
	od := c.Outlier
	if od == nil {
		return
	}
	l := &c.live.outlier
	now := c.clock().Now()
	if now.UnixNano() < l.nextTick.Load() {
		return
	}
	if !l.mu.TryLock() {
		return // another request is running it
	}
	defer l.mu.Unlock()
	next := l.nextTick.Load()
	if now.UnixNano() < next {
		return
	}
	// Stay on the interval grid, as a timer re-armed every interval would:
	// the next tick is the first grid point after now.
	step := int64(od.Interval)
	if step <= 0 {
		step = int64(DefaultOutlierInterval)
	}
	l.nextTick.Store(next + ((now.UnixNano()-next)/step+1)*step)
	changed := false
	active := 0
	for _, h := range c.Hosts {
		if h.ejected.Load() {
			d := min(od.BaseEjectionTime*time.Duration(h.backoff), od.MaxEjectionTime)
			if now.Sub(h.lastEjection) >= d {
				h.ejected.Store(false)
				h.consec5xx.Store(0)
				h.consecGateway.Store(0)
				h.consecLocal.Store(0)
				h.lastUnejection = now
				changed = true
			} else {
				active++
			}
			continue
		}
		if !h.lastUnejection.IsZero() && now.Sub(h.lastUnejection) >= od.Interval && h.backoff > 0 {
			h.backoff--
		}
	}
	c.Stats.OutlierActive.Store(int64(active))
	if changed {
		l.gen.Add(1)
	}
}

// Tick runs outlier detection's interval work now if it is due; the
// request path and admin reads call it.
func (c *Cluster) Tick() {
	if c.Outlier != nil {
		c.tick()
	}
}

func (c *Cluster) clock() Clock {
	if c.Clock != nil {
		return c.Clock
	}
	return RealClock
}
