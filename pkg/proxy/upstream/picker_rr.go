package upstream

import (
	"math/rand/v2"
	"sync/atomic"
)

// maxRRWork bounds the work (sequence length × hosts) of building a
// weighted round-robin sequence; weights are scaled down to fit.
const maxRRWork = 1 << 22

// rrPicker is (weighted) round robin. Equal weights cycle through the
// hosts; unequal weights follow a precomputed smooth weighted sequence
// (each host appears weight times per cycle, spread out), which gives the
// same proportions and interleaving as Envoy's EDF scheduler. The position
// is one atomic counter, started at a random offset as Envoy does so that
// proxies do not all hit the first host together.
type rrPicker struct {
	hosts []*Host
	seq   []uint32
	next  atomic.Uint64
}

func newRRPicker(hosts []*Host) *rrPicker {
	p := &rrPicker{hosts: hosts}
	if !weightsEqual(hosts) {
		p.seq = smoothWeightedSequence(hosts)
	}
	n := uint64(len(hosts))
	if p.seq != nil {
		n = uint64(len(p.seq))
	}
	if n > 0 {
		p.next.Store(rand.Uint64N(n))
	}
	return p
}

func (p *rrPicker) pick(_ hashKey, _ uint32) *Host {
	i := p.next.Add(1) - 1
	if p.seq == nil {
		return p.hosts[i%uint64(len(p.hosts))]
	}
	return p.hosts[p.seq[i%uint64(len(p.seq))]]
}

// smoothWeightedSequence builds one cycle of smooth weighted round robin:
// every step each host gains its weight, the richest is chosen and pays
// the total.
func smoothWeightedSequence(hosts []*Host) []uint32 {
	w := make([]int64, len(hosts))
	g := uint64(0)
	for i, h := range hosts {
		w[i] = int64(hostWeight(h))
		g = gcd(g, uint64(w[i]))
	}
	var total int64
	for i := range w {
		w[i] /= int64(g)
		total += w[i]
	}
	if limit := int64(maxRRWork / len(hosts)); total > limit && limit > 0 {
		scaled := int64(0)
		for i := range w {
			w[i] = max(1, w[i]*limit/total)
			scaled += w[i]
		}
		total = scaled
	}
	seq := make([]uint32, 0, total)
	cur := make([]int64, len(w))
	for step := int64(0); step < total; step++ {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq = append(seq, uint32(best))
	}
	return seq
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
