package upstream

import "math/rand/v2"

// A picker chooses one host of a fixed set. Pickers are built when a
// cluster's balancing state is built (at compile time, and again when host
// health changes) and never change after; picking takes no locks and
// allocates nothing.
type picker interface {
	pick(key hashKey, attempt uint32) *Host
}

// hashKey is a request's hash key as pickers see it (passed by value so
// picking through the interface allocates nothing).
type hashKey struct {
	v  uint64
	ok bool
}

// PickInput is what a pick may depend on.
type PickInput struct {
	// Hash is the request's hash key (route hash_policy) for ring hash and
	// maglev clusters; HasHash is false when the policy produced none, and
	// a random key is used, as Envoy does.
	Hash    uint64
	HasHash bool
	// Avoid lists hosts a retry should not go to again (Envoy's
	// previous_hosts predicate); the cluster re-picks up to
	// MaxSelectAttempts times to find another one.
	Avoid             []*Host
	MaxSelectAttempts int
	// ExcludePriorities (bit i for priority i) are levels a retry already
	// tried (Envoy's previous_priorities): the priority load is worked out
	// as if they had no healthy hosts, so the retry goes to the next level.
	ExcludePriorities uint64
}

func (in *PickInput) avoids(h *Host) bool {
	for _, a := range in.Avoid {
		if a == h {
			return true
		}
	}
	return false
}

// weightsEqual reports whether every host has the same weight.
func weightsEqual(hosts []*Host) bool {
	for _, h := range hosts {
		if h.Weight != hosts[0].Weight {
			return false
		}
	}
	return true
}

func hostWeight(h *Host) uint64 { return uint64(max(h.Weight, 1)) }

// cumulative returns the running sums of the hosts' weights.
func cumulative(hosts []*Host) ([]uint64, uint64) {
	cum := make([]uint64, len(hosts))
	var total uint64
	for i, h := range hosts {
		total += hostWeight(h)
		cum[i] = total
	}
	return cum, total
}

// searchCumulative returns the first index whose running sum exceeds r.
func searchCumulative(cum []uint64, r uint64) int {
	lo, hi := 0, len(cum)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if cum[mid] <= r {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo >= len(cum) {
		lo = len(cum) - 1
	}
	return lo
}

// weightedRandom picks an index by weight (uniformly when cum is nil).
func weightedRandom(n int, cum []uint64, total uint64) int {
	if cum == nil {
		return rand.IntN(n)
	}
	return searchCumulative(cum, rand.Uint64N(total))
}
