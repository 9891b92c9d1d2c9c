package upstream

// DefaultChoiceCount is Envoy's least_request choice_count default.
const DefaultChoiceCount = 2

// leastReqPicker is Envoy's LEAST_REQUEST: sample choice_count hosts at
// random (with replacement) and keep the one with the fewest active
// requests; the first sampled wins ties. This is "power of two choices"
// with the default count of 2.
//
// With unequal weights Envoy runs an EDF schedule over weight/(active+1).
// sluice keeps the pick lock-free instead: it samples by weight and keeps
// the host with the fewest active requests per unit of weight (ties keep
// the first sample), which gives the weight proportions when idle and the
// same preference for the less loaded host under load.
type leastReqPicker struct {
	hosts   []*Host
	cum     []uint64 // nil when weights are equal
	total   uint64
	choices int
}

func newLeastReqPicker(hosts []*Host, choices int) *leastReqPicker {
	if choices < 2 {
		choices = DefaultChoiceCount
	}
	p := &leastReqPicker{hosts: hosts, choices: choices}
	if !weightsEqual(hosts) {
		p.cum, p.total = cumulative(hosts)
	}
	return p
}

func (p *leastReqPicker) pick(_ hashKey, _ uint32) *Host {
	n := len(p.hosts)
	if n == 1 {
		return p.hosts[0]
	}
	var best *Host
	var bestActive int64
	for c := 0; c < p.choices; c++ {
		h := p.hosts[weightedRandom(n, p.cum, p.total)]
		a := h.Active.Load()
		if best == nil || lessLoaded(a, h, bestActive, best, p.cum != nil) {
			best, bestActive = h, a
		}
	}
	return best
}

// lessLoaded reports whether host a (with aActive requests) is less loaded
// than host b: fewer active requests, or, weighted, fewer per unit of
// weight.
func lessLoaded(aActive int64, a *Host, bActive int64, b *Host, weighted bool) bool {
	if !weighted {
		return aActive < bActive
	}
	return uint64(aActive)*hostWeight(b) < uint64(bActive)*hostWeight(a)
}
