package upstream

import "github.com/cespare/xxhash/v2"

// XXH64 (xxHash, 64-bit) is the hash Envoy uses for hash policies (header,
// cookie, query parameter, source IP), ring hash entries ("address_i") and
// maglev permutations (seeds 0 and 1: Envoy's
// source/extensions/load_balancing_policies/maglev/maglev_lb.cc). Using the
// same function keeps the mapping of a key to a host identical across
// proxies and restarts. github.com/cespare/xxhash/v2 is that function,
// assembly-optimized; TestXXHash64KnownValues pins it to the reference
// implementation's outputs.

// XXHash64 hashes b with seed, without allocating.
func XXHash64(b []byte, seed uint64) uint64 {
	if seed == 0 {
		return xxhash.Sum64(b)
	}
	var d xxhash.Digest
	d.ResetWithSeed(seed)
	_, _ = d.Write(b) // a Digest's Write never fails
	return d.Sum64()
}

// XXHash64String hashes s with seed 0 without copying it.
func XXHash64String(s string) uint64 { return xxhash.Sum64String(s) }
