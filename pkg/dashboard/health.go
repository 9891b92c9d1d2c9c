package dashboard

import "strings"

// Health classes, as Kiali names them.
const (
	Healthy  = "healthy"
	Degraded = "degraded"
	Failure  = "failure"
	// Idle is a node or edge with no requests in the window.
	Idle = "idle"
)

// Kiali's default request health thresholds (kiali/kiali
// config.HealthConfig's default rate tolerance for 5xx): an error ratio
// above 0.1% is degraded, above 10% a failure.
const (
	DegradedRatio = 0.001
	FailureRatio  = 0.10
)

// healthOf classes an error ratio; with no requests the class is idle.
func healthOf(requests, errors float64) string {
	if requests <= 0 {
		return Idle
	}
	r := errors / requests
	switch {
	case r > FailureRatio:
		return Failure
	case r > DegradedRatio:
		return Degraded
	}
	return Healthy
}

// worse is the worse of two classes (failure > degraded > healthy > idle).
func worse(a, b string) string {
	rank := map[string]int{Idle: 0, Healthy: 1, Degraded: 2, Failure: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// isError is a 5xx answer, what Kiali's default tolerance counts. TCP
// series have no code and are never errors.
func isError(code string) bool { return len(code) == 3 && strings.HasPrefix(code, "5") }
