package upstream

// randomPicker chooses a host at random, in proportion to the weights
// (Envoy's RANDOM).
type randomPicker struct {
	hosts []*Host
	cum   []uint64 // nil when weights are equal
	total uint64
}

func newRandomPicker(hosts []*Host) *randomPicker {
	p := &randomPicker{hosts: hosts}
	if !weightsEqual(hosts) {
		p.cum, p.total = cumulative(hosts)
	}
	return p
}

func (p *randomPicker) pick(_ hashKey, _ uint32) *Host {
	return p.hosts[weightedRandom(len(p.hosts), p.cum, p.total)]
}
