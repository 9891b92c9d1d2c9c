package dashboard

// Health classes, as Kiali names them.
const (
	Healthy  = "healthy"
	Degraded = "degraded"
	Failure  = "failure"
	// Idle is a node or edge with no requests in the window.
	Idle = "idle"
)

// The 5xx thresholds: an error ratio above DegradedRatio is degraded,
// above FailureRatio a failure, as issue 9 asks. Kiali's defaults
// (kiali/kiali config/config.go AddHealthDefault) have the same failure
// threshold for 5XX and count any 5xx as degraded; this keeps a 0.1%
// tolerance so one stray error does not colour a busy service.
const (
	DegradedRatio = 0.001
	FailureRatio  = 0.10
)

// tolerance is one of Kiali's default rate tolerances: the share of
// requests with a class of response above which an edge is degraded or
// failing (a negative degraded: never degraded, only failing).
type tolerance struct {
	class             func(code string) bool
	degraded, failure float64
}

// tolerances are Kiali's AddHealthDefault for HTTP: 5XX (with the 0.1%
// above), 4XX degraded above 10% and failing above 20%, no response
// (Istio's response_code "0", Kiali's "-") failing above 10%.
var tolerances = []tolerance{
	{class: isError, degraded: DegradedRatio, failure: FailureRatio},
	{class: is4xx, degraded: 0.10, failure: 0.20},
	{class: func(code string) bool { return code == "0" || code == "-" }, degraded: -1, failure: 0.10},
}

// healthOfCodes classes requests by response code (requests per second
// by code) against every tolerance, the worst one winning; with no
// requests the class is idle.
func healthOfCodes(requests float64, codes map[string]float64) string {
	if requests <= 0 {
		return Idle
	}
	h := Healthy
	for _, t := range tolerances {
		n := 0.0
		for code, v := range codes {
			if t.class(code) {
				n += v
			}
		}
		r := n / requests
		switch {
		case r > t.failure:
			h = worse(h, Failure)
		case t.degraded >= 0 && r > t.degraded:
			h = worse(h, Degraded)
		}
	}
	return h
}

// healthOf classes a 5xx count alone.
func healthOf(requests, errors float64) string {
	return healthOfCodes(requests, map[string]float64{"500": errors, "200": requests - errors})
}

// worse is the worse of two classes (failure > degraded > healthy > idle).
func worse(a, b string) string {
	rank := map[string]int{Idle: 0, Healthy: 1, Degraded: 2, Failure: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// isError is a 5xx answer, what the error ratio counts. TCP series have
// no code and are never errors.
func isError(code string) bool { return len(code) == 3 && code[0] == '5' }

func is4xx(code string) bool { return len(code) == 3 && code[0] == '4' }
