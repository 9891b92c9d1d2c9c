package dashboard

import "time"

// slot is one scrape interval of one proxy: the series that changed and by
// how much.
type slot struct {
	at     time.Time
	dt     time.Duration
	deltas map[Key]*Counts
}

// ring keeps a proxy's last len(slots) intervals; pushing past its size
// overwrites the oldest, so its memory is bounded by size times the
// series cap.
type ring struct {
	slots []slot
	next  int
	n     int
}

func newRing(size int) *ring {
	if size < 1 {
		size = 1
	}
	return &ring{slots: make([]slot, size)}
}

func (r *ring) push(s slot) {
	r.slots[r.next] = s
	r.next = (r.next + 1) % len(r.slots)
	if r.n < len(r.slots) {
		r.n++
	}
}

// sum adds the deltas of the intervals that ended after since into into,
// and returns the time those intervals cover.
func (r *ring) sum(since time.Time, into map[Key]*Counts) time.Duration {
	var covered time.Duration
	for i := 0; i < r.n; i++ {
		s := &r.slots[(r.next-1-i+len(r.slots))%len(r.slots)]
		if !s.at.After(since) {
			break
		}
		covered += s.dt
		for k, d := range s.deltas {
			c := into[k]
			if c == nil {
				c = &Counts{}
				into[k] = c
			}
			c.add(d, 1)
		}
	}
	return covered
}

// series is how many series the ring holds in all.
func (r *ring) series() int {
	n := 0
	for i := 0; i < r.n; i++ {
		n += len(r.slots[i].deltas)
	}
	return n
}
