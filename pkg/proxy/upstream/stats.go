package upstream

import "sync/atomic"

// Stats are a cluster's counters and gauges, named as Envoy names them.
// They are kept by cluster name across config pushes.
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

	// Circuit breaking.
	RqPendingOverflow atomic.Uint64
	RqPendingTotal    atomic.Uint64
	RqPendingActive   atomic.Int64
	CxOverflow        atomic.Uint64
	RqRetry           atomic.Uint64
	RqRetryOverflow   atomic.Uint64
	RqRetryActive     atomic.Int64

	// Retries and per-try timeouts, counted by the router's retry loop.
	RqRetrySuccess       atomic.Uint64
	RqRetryLimitExceeded atomic.Uint64
	RqPerTryTimeout      atomic.Uint64

	// Connections (counted by the cluster's transport).
	CxTotal       atomic.Uint64
	CxActive      atomic.Int64
	CxMaxRequests atomic.Uint64
	CxMaxDuration atomic.Uint64
	// Connections made by protocol (HTTP/2: h2c, or h2 chosen by ALPN).
	CxHTTP1Total atomic.Uint64
	CxHTTP2Total atomic.Uint64

	// Balancing.
	LbHealthyPanic atomic.Uint64

	// Outlier detection.
	OutlierActive          atomic.Int64
	OutlierEnforcedTotal   atomic.Uint64
	OutlierEnforced5xx     atomic.Uint64
	OutlierEnforcedGateway atomic.Uint64
	OutlierEnforcedLocal   atomic.Uint64
	OutlierDetected5xx     atomic.Uint64
	OutlierDetectedGateway atomic.Uint64
	OutlierDetectedLocal   atomic.Uint64
	OutlierOverflow        atomic.Uint64
	OutlierTotal           atomic.Uint64
	OutlierConsecutive5xx  atomic.Uint64

	// Membership, set when the cluster is built or its health changes.
	MembershipTotal   atomic.Int64
	MembershipHealthy atomic.Int64

	// Thresholds in force, for the circuit_breakers.default.* gauges.
	thresholds atomic.Pointer[Thresholds]
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

// StatValues lists the counters and gauges as (envoy name, value).
func (s *Stats) StatValues() [][2]any {
	out := [][2]any{
		{"upstream_rq_total", s.RqTotal.Load()},
		{"upstream_rq_2xx", s.Rq2xx.Load()},
		{"upstream_rq_3xx", s.Rq3xx.Load()},
		{"upstream_rq_4xx", s.Rq4xx.Load()},
		{"upstream_rq_5xx", s.Rq5xx.Load()},
		{"upstream_rq_timeout", s.RqTimeout.Load()},
		{"upstream_rq_active", s.RqActive.Load()},
		{"upstream_rq_pending_total", s.RqPendingTotal.Load()},
		{"upstream_rq_pending_active", s.RqPendingActive.Load()},
		{"upstream_rq_pending_overflow", s.RqPendingOverflow.Load()},
		{"upstream_rq_retry", s.RqRetry.Load()},
		{"upstream_rq_retry_overflow", s.RqRetryOverflow.Load()},
		{"upstream_rq_retry_success", s.RqRetrySuccess.Load()},
		{"upstream_rq_retry_limit_exceeded", s.RqRetryLimitExceeded.Load()},
		{"upstream_rq_per_try_timeout", s.RqPerTryTimeout.Load()},
		{"upstream_cx_total", s.CxTotal.Load()},
		{"upstream_cx_active", s.CxActive.Load()},
		{"upstream_cx_overflow", s.CxOverflow.Load()},
		{"upstream_cx_connect_fail", s.CxConnectFail.Load()},
		{"upstream_cx_max_requests", s.CxMaxRequests.Load()},
		{"upstream_cx_max_duration_reached", s.CxMaxDuration.Load()},
		{"upstream_cx_http1_total", s.CxHTTP1Total.Load()},
		{"upstream_cx_http2_total", s.CxHTTP2Total.Load()},
		{"upstream_cx_none_healthy", s.CxNoneHealthy.Load()},
		{"lb_healthy_panic", s.LbHealthyPanic.Load()},
		{"membership_total", s.MembershipTotal.Load()},
		{"membership_healthy", s.MembershipHealthy.Load()},
		{"outlier_detection.ejections_active", s.OutlierActive.Load()},
		{"outlier_detection.ejections_enforced_total", s.OutlierEnforcedTotal.Load()},
		{"outlier_detection.ejections_enforced_consecutive_5xx", s.OutlierEnforced5xx.Load()},
		{"outlier_detection.ejections_enforced_consecutive_gateway_failure", s.OutlierEnforcedGateway.Load()},
		{"outlier_detection.ejections_enforced_consecutive_local_origin_failure", s.OutlierEnforcedLocal.Load()},
		{"outlier_detection.ejections_detected_consecutive_5xx", s.OutlierDetected5xx.Load()},
		{"outlier_detection.ejections_detected_consecutive_gateway_failure", s.OutlierDetectedGateway.Load()},
		{"outlier_detection.ejections_detected_consecutive_local_origin_failure", s.OutlierDetectedLocal.Load()},
		{"outlier_detection.ejections_overflow", s.OutlierOverflow.Load()},
		{"outlier_detection.ejections_total", s.OutlierTotal.Load()},
		{"outlier_detection.ejections_consecutive_5xx", s.OutlierConsecutive5xx.Load()},
	}
	if th := s.thresholds.Load(); th != nil {
		open := func(b bool) uint64 {
			if b {
				return 1
			}
			return 0
		}
		remaining := func(max uint64, used int64) uint64 {
			if used < 0 {
				used = 0
			}
			if uint64(used) >= max {
				return 0
			}
			return max - uint64(used)
		}
		cx, pending, rq, retries := s.CxActive.Load(), s.RqPendingActive.Load(), s.RqActive.Load(), s.RqRetryActive.Load()
		out = append(out,
			[2]any{"circuit_breakers.default.cx_open", open(uint64(max(cx, 0)) >= th.MaxConnections)},
			[2]any{"circuit_breakers.default.rq_pending_open", open(uint64(max(pending, 0)) >= th.MaxPendingRequests)},
			[2]any{"circuit_breakers.default.rq_open", open(uint64(max(rq, 0)) >= th.MaxRequests)},
			[2]any{"circuit_breakers.default.rq_retry_open", open(uint64(max(retries, 0)) >= th.MaxRetries)},
			[2]any{"circuit_breakers.default.remaining_cx", remaining(th.MaxConnections, cx)},
			[2]any{"circuit_breakers.default.remaining_pending", remaining(th.MaxPendingRequests, pending)},
			[2]any{"circuit_breakers.default.remaining_rq", remaining(th.MaxRequests, rq)},
			[2]any{"circuit_breakers.default.remaining_retries", remaining(th.MaxRetries, retries)},
		)
	}
	return out
}
