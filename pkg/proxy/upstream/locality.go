package upstream

import (
	"math/rand/v2"
)

// Priority and locality balancing, after Envoy's LoadBalancerBase:
//
//   - Hosts come in priorities (EDS LocalityLbEndpoints.priority); Istio
//     puts the proxy's own zone in priority 0, its region in 1, then the
//     failover regions.
//   - Each priority's health is min(100, overprovisioning × healthy/total),
//     the factor being 1.4 by default: a priority keeps all the traffic
//     until less than 1/1.4 ≈ 71% of its hosts are healthy, then spills
//     the rest over to the next priority.
//   - A priority whose healthy share is below the panic threshold (Istio:
//     the DestinationRule's minHealthPercent, 0 by default, which turns
//     panic off) is "in panic" and balances over all its hosts, ejected or
//     not — but only when the priorities together are not fully available.
//   - With locality weighted balancing (Istio's localityLbSetting distribute
//     or failover), a locality is chosen first, by weight × availability,
//     then a host within it.
//
// All of it is computed into an immutable lbState when the cluster is
// built and again whenever a host is ejected or returns; picking reads the
// state without locks.

// DefaultOverprovisioningFactor is Envoy's default, as a percentage.
const DefaultOverprovisioningFactor = 140

// DefaultPanicThreshold is Envoy's default healthy panic threshold (%).
const DefaultPanicThreshold = 50.0

// PriorityLevel is one EDS priority of a cluster.
type PriorityLevel struct {
	Localities []LocalityHosts
}

// LocalityHosts is one locality of a priority with its load balancing
// weight (the EDS locality weight).
type LocalityHosts struct {
	Locality string
	Weight   uint32
	Hosts    []*Host
}

// lbState is what picking reads: computed from the cluster's priorities
// and the hosts' health at one moment.
type lbState struct {
	gen uint64
	// prios are the priorities, in order; load[i] is the percentage of
	// requests priority i gets (summing to 100 when any host is usable).
	prios []prioState
	load  []uint32
	// panicking counts priorities in panic, for lb_healthy_panic.
	anyPanic bool
	healthy  int
	total    int
}

type prioState struct {
	panic bool
	// flat picks over the hosts in use (healthy, or all in panic); nil when
	// there are none.
	flat picker
	// localities, when locality weighted balancing applies: cumulative
	// effective weights and a picker per locality with usable hosts.
	locPickers []picker
	locCum     []float64
}

// buildState computes the balancing state for the hosts' current health.
func (c *Cluster) buildState(gen uint64) *lbState {
	st := &lbState{gen: gen}
	n := len(c.Priorities)
	health := make([]uint32, n)
	op := uint64(c.LB.OverprovisioningFactor)
	if op == 0 {
		op = DefaultOverprovisioningFactor
	}
	totals := make([]int, n)
	healthys := make([]int, n)
	for i, pl := range c.Priorities {
		for _, l := range pl.Localities {
			for _, h := range l.Hosts {
				totals[i]++
				if h.Healthy() {
					healthys[i]++
				}
			}
		}
		st.total += totals[i]
		st.healthy += healthys[i]
		if totals[i] > 0 {
			health[i] = uint32(min(100, op*uint64(healthys[i])/uint64(totals[i])))
		}
	}
	var sum uint32
	for _, h := range health {
		sum += h
	}
	nta := min(sum, 100) // normalized total availability
	st.load = make([]uint32, n)
	panics := make([]bool, n)
	threshold := c.LB.PanicThreshold
	switch {
	case n == 0:
	case nta == 0 && threshold == 0:
		// Nothing healthy and panic disabled: requests find no host.
		st.load[0] = 100
	default:
		if nta > 0 {
			remaining := uint32(100)
			first := -1
			for i, h := range health {
				if first < 0 && h > 0 {
					first = i
				}
				l := min(remaining, h*100/nta)
				st.load[i] = l
				remaining -= l
			}
			if remaining > 0 && first >= 0 {
				st.load[first] += remaining
			}
		}
		all := true
		for i := range panics {
			if nta < 100 {
				pct := 0.0
				if totals[i] > 0 {
					pct = 100 * float64(healthys[i]) / float64(totals[i])
				}
				panics[i] = pct < threshold
			}
			all = all && panics[i]
		}
		if all {
			// Every priority in panic: load by host count.
			if st.total > 0 {
				remaining := uint32(100)
				first := -1
				for i := range st.load {
					if first < 0 && totals[i] > 0 {
						first = i
					}
					st.load[i] = uint32(100 * totals[i] / st.total)
					remaining -= st.load[i]
				}
				st.load[first] += remaining
			}
		}
	}
	st.prios = make([]prioState, n)
	for i := range c.Priorities {
		st.prios[i] = c.buildPriority(&c.Priorities[i], panics[i])
		st.anyPanic = st.anyPanic || (panics[i] && st.load[i] > 0)
	}
	return st
}

func (c *Cluster) buildPriority(pl *PriorityLevel, panic bool) prioState {
	ps := prioState{panic: panic}
	usable := func(hosts []*Host) []*Host {
		if panic {
			return hosts
		}
		var out []*Host
		for _, h := range hosts {
			if h.Healthy() {
				out = append(out, h)
			}
		}
		return out
	}
	if c.LB.Policy.isHash() {
		var hw []weightedHost
		if c.LB.LocalityWeighted {
			// Envoy normalizes host weights within each locality, scaled by
			// the locality's share of the locality weights.
			var sum uint64
			for _, l := range pl.Localities {
				sum += uint64(l.Weight)
			}
			if sum > 0 {
				for _, l := range pl.Localities {
					if l.Weight > 0 {
						hw = normalizeHosts(usable(l.Hosts), float64(l.Weight)/float64(sum), hw)
					}
				}
			}
		} else {
			var all []*Host
			for _, l := range pl.Localities {
				all = append(all, usable(l.Hosts)...)
			}
			hw = normalizeHosts(all, 1, hw)
		}
		if len(hw) == 0 {
			return ps
		}
		if c.LB.Policy == Maglev {
			ps.flat = newMaglevPicker(hw, c.LB.TableSize)
		} else {
			ps.flat = newRingPicker(hw, c.LB.MinRingSize, c.LB.MaxRingSize)
		}
		return ps
	}
	var all []*Host
	for _, l := range pl.Localities {
		all = append(all, usable(l.Hosts)...)
	}
	if len(all) > 0 {
		ps.flat = c.newPicker(all)
	}
	if c.LB.LocalityWeighted && !panic {
		op := float64(c.LB.OverprovisioningFactor)
		if op == 0 {
			op = DefaultOverprovisioningFactor
		}
		var cum float64
		for _, l := range pl.Localities {
			hosts := usable(l.Hosts)
			if len(hosts) == 0 || l.Weight == 0 {
				continue
			}
			avail := min(1.0, op/100*float64(len(hosts))/float64(len(l.Hosts)))
			cum += float64(l.Weight) * avail
			ps.locCum = append(ps.locCum, cum)
			ps.locPickers = append(ps.locPickers, c.newPicker(hosts))
		}
	}
	return ps
}

// newPicker builds the cluster's per-set picker for hosts.
func (c *Cluster) newPicker(hosts []*Host) picker {
	switch c.LB.Policy {
	case LeastRequest:
		return newLeastReqPicker(hosts, c.LB.ChoiceCount)
	case Random:
		return newRandomPicker(hosts)
	default:
		return newRRPicker(hosts)
	}
}

// pickOnce chooses a priority, a locality and a host.
func (st *lbState) pickOnce(key hashKey, attempt uint32, hashed bool, exclude uint64) (*Host, bool) {
	if len(st.prios) == 0 {
		return nil, false
	}
	p := 0
	if len(st.prios) > 1 {
		var r uint64
		if hashed && key.ok {
			r = key.v
		} else {
			r = rand.Uint64()
		}
		load := st.load
		if exclude != 0 {
			var buf [8]uint32
			load = excludeLoad(st.load, exclude, buf[:0])
		}
		p = choosePriority(load, uint32(r%100))
	}
	ps := &st.prios[p]
	if len(ps.locPickers) > 0 {
		total := ps.locCum[len(ps.locCum)-1]
		x := rand.Float64() * total
		for i, cw := range ps.locCum {
			if x < cw || i == len(ps.locCum)-1 {
				return ps.locPickers[i].pick(key, attempt), ps.panic
			}
		}
	}
	if ps.flat == nil {
		return nil, false
	}
	return ps.flat.pick(key, attempt), ps.panic
}

// excludeLoad moves the load of excluded priorities to the next priority
// not excluded, as Envoy's previous_priorities does by treating them as
// having no healthy hosts. When every level that has load is excluded the
// load is left as it was.
func excludeLoad(load []uint32, exclude uint64, buf []uint32) []uint32 {
	out := append(buf, load...)
	var carry uint32
	for i := range out {
		if i < 64 && exclude&(1<<uint(i)) != 0 {
			carry += out[i]
			out[i] = 0
			continue
		}
		out[i] += carry
		carry = 0
	}
	if carry != 0 {
		// Nothing below the excluded levels: send the load back up to the
		// last level not excluded, else keep the original load.
		for i := len(out) - 1; i >= 0; i-- {
			if i >= 64 || exclude&(1<<uint(i)) == 0 {
				out[i] += carry
				return out
			}
		}
		return load
	}
	return out
}

// choosePriority maps x in [0,100) onto the cumulative priority loads.
func choosePriority(load []uint32, x uint32) int {
	var cum uint32
	for i, l := range load {
		cum += l
		if x < cum {
			return i
		}
	}
	return 0
}
