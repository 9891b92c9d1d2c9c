package upstream

import (
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
)

// Envoy's defaults for the consistent-hash balancers.
const (
	DefaultMinRingSize     = 1024
	DefaultMaxRingSize     = 8 * 1024 * 1024
	DefaultMaglevTableSize = 65537
)

// weightedHost is a host and its share of the traffic (shares sum to 1
// over the hosts of one priority).
type weightedHost struct {
	host   *Host
	weight float64
}

// normalizeHosts gives each host weight/sum(weights).
func normalizeHosts(hosts []*Host, share float64, out []weightedHost) []weightedHost {
	var sum uint64
	for _, h := range hosts {
		sum += hostWeight(h)
	}
	if sum == 0 {
		return out
	}
	for _, h := range hosts {
		out = append(out, weightedHost{host: h, weight: float64(hostWeight(h)) * share / float64(sum)})
	}
	return out
}

// hashKeyOf picks the key for a request: its hash, or a random one when
// the hash policy produced nothing (as Envoy does).
func hashKeyOf(k hashKey) uint64 {
	if k.ok {
		return k.v
	}
	return rand.Uint64()
}

// ringPicker is Envoy's RING_HASH (ketama): every host is hashed onto a
// ring weight×scale times with xxHash64("address_i"); a request goes to
// the first entry at or after its hash.
type ringPicker struct {
	ring []ringEntry
}

type ringEntry struct {
	hash uint64
	host *Host
}

func newRingPicker(hosts []weightedHost, minSize, maxSize uint64) *ringPicker {
	p := &ringPicker{}
	if len(hosts) == 0 {
		return p
	}
	if minSize == 0 {
		minSize = DefaultMinRingSize
	}
	if maxSize == 0 {
		maxSize = DefaultMaxRingSize
	}
	minW := math.MaxFloat64
	for _, wh := range hosts {
		minW = min(minW, wh.weight)
	}
	// Scale so the lightest host gets a whole number of entries, within
	// the maximum ring size.
	scale := min(math.Ceil(minW*float64(minSize))/minW, float64(maxSize))
	p.ring = make([]ringEntry, 0, uint64(math.Ceil(scale)))
	current, target := 0.0, 0.0
	key := make([]byte, 0, 64)
	for _, wh := range hosts {
		key = append(key[:0], wh.host.Address...)
		key = append(key, '_')
		base := len(key)
		target += scale * wh.weight
		for i := uint64(0); current < target; i++ {
			key = strconv.AppendUint(key[:base], i, 10)
			p.ring = append(p.ring, ringEntry{hash: XXHash64(key, 0), host: wh.host})
			current++
		}
	}
	sort.Slice(p.ring, func(i, j int) bool { return p.ring[i].hash < p.ring[j].hash })
	return p
}

func (p *ringPicker) pick(in hashKey, attempt uint32) *Host {
	n := len(p.ring)
	if n == 0 {
		return nil
	}
	h := hashKeyOf(in)
	// First entry with hash >= h, wrapping to the start.
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.ring[mid].hash < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == n {
		lo = 0
	}
	if attempt > 0 {
		// A retry avoiding earlier hosts behaves as if the host were not
		// on the ring: walk on (Envoy's chooseHost with attempt).
		lo = (lo + int(attempt)) % n
	}
	return p.ring[lo].host
}

// maglevPicker is Envoy's MAGLEV: a lookup table of prime size filled by
// each host's permutation (offset and skip from xxHash64 of its address
// with seeds 0 and 1), hosts taking turns in proportion to their weight.
type maglevPicker struct {
	table []*Host
}

func newMaglevPicker(hosts []weightedHost, size uint64) *maglevPicker {
	p := &maglevPicker{}
	if len(hosts) == 0 {
		return p
	}
	if size == 0 {
		size = DefaultMaglevTableSize
	}
	type entry struct {
		host                      *Host
		offset, skip, next, count uint64
		weight, target            float64
	}
	sorted := append([]weightedHost(nil), hosts...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].host.Address < sorted[j].host.Address })
	entries := make([]entry, len(sorted))
	maxW := 0.0
	for i, wh := range sorted {
		key := stringBytes(wh.host.Address)
		entries[i] = entry{
			host:   wh.host,
			offset: XXHash64(key, 0) % size,
			skip:   XXHash64(key, 1)%(size-1) + 1,
			weight: wh.weight,
		}
		maxW = max(maxW, wh.weight)
	}
	p.table = make([]*Host, size)
	filled := uint64(0)
	for iteration := 1.0; filled < size; iteration++ {
		for i := 0; i < len(entries) && filled < size; i++ {
			e := &entries[i]
			if iteration*e.weight < e.target {
				continue
			}
			e.target += maxW
			c := (e.offset + e.skip*e.next) % size
			for p.table[c] != nil {
				e.next++
				c = (e.offset + e.skip*e.next) % size
			}
			p.table[c] = e.host
			e.next++
			e.count++
			filled++
		}
	}
	return p
}

func (p *maglevPicker) pick(in hashKey, attempt uint32) *Host {
	if len(p.table) == 0 {
		return nil
	}
	h := hashKeyOf(in)
	if attempt > 0 {
		// Envoy flips most of the bits to land elsewhere on a retry.
		h ^= ^uint64(0) - uint64(attempt) + 1
	}
	return p.table[h%uint64(len(p.table))]
}
