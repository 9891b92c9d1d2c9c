package dashboard

import "math"

// quantile is Prometheus' histogram_quantile over cumulative buckets
// (prometheus/prometheus promql/quantile.go bucketQuantile): the rank
// q*count falls in a bucket and is linearly interpolated inside it, the
// first bucket starting at 0; a rank in the +Inf bucket answers the
// highest finite bound. NaN when there are no observations.
func quantile(q float64, buckets []Bucket) float64 {
	if len(buckets) < 2 || !math.IsInf(buckets[len(buckets)-1].LE, 1) {
		return math.NaN()
	}
	total := buckets[len(buckets)-1].Count
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	i := 0
	for i < len(buckets)-1 && buckets[i].Count < rank {
		i++
	}
	if i == len(buckets)-1 {
		return buckets[len(buckets)-2].LE
	}
	if i == 0 && buckets[0].LE <= 0 {
		return buckets[0].LE
	}
	start, prev := 0.0, 0.0
	if i > 0 {
		start, prev = buckets[i-1].LE, buckets[i-1].Count
	}
	in := buckets[i].Count - prev
	if in <= 0 {
		return buckets[i].LE
	}
	return start + (buckets[i].LE-start)*((rank-prev)/in)
}
