package upstream

import "sync/atomic"

// Stats are a cluster's counters, named as Envoy names them. They are kept
// by cluster name across config pushes.
type Stats struct {
	RqTotal       atomic.Uint64
	Rq2xx         atomic.Uint64
	Rq3xx         atomic.Uint64
	Rq4xx         atomic.Uint64
	Rq5xx         atomic.Uint64
	RqTimeout     atomic.Uint64
	CxConnectFail atomic.Uint64
	CxNoneHealthy atomic.Uint64
	RqActive      atomic.Int64
}

// RecordStatus counts a response by status class.
func (s *Stats) RecordStatus(code int) {
	switch {
	case code >= 500:
		s.Rq5xx.Add(1)
	case code >= 400:
		s.Rq4xx.Add(1)
	case code >= 300:
		s.Rq3xx.Add(1)
	case code >= 200:
		s.Rq2xx.Add(1)
	}
}

// StatValues lists the counters as (envoy name, value).
func (s *Stats) StatValues() [][2]any {
	return [][2]any{
		{"upstream_rq_total", s.RqTotal.Load()},
		{"upstream_rq_2xx", s.Rq2xx.Load()},
		{"upstream_rq_3xx", s.Rq3xx.Load()},
		{"upstream_rq_4xx", s.Rq4xx.Load()},
		{"upstream_rq_5xx", s.Rq5xx.Load()},
		{"upstream_rq_timeout", s.RqTimeout.Load()},
		{"upstream_rq_active", s.RqActive.Load()},
		{"upstream_cx_connect_fail", s.CxConnectFail.Load()},
		{"upstream_cx_none_healthy", s.CxNoneHealthy.Load()},
	}
}
