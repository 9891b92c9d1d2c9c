package analysis

import (
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// sluice's own check (issue 13): retries the route timeout cuts short.
func init() {
	register(&Analyzer{
		Name:        "sluice.RetryTimeoutAnalyzer",
		Description: "Checks that a route's first try and retries, each allowed perTryTimeout, fit in the route's timeout.",
		Codes:       []string{"SLU0006"},
		run:         analyzeRetryTimeouts,
	})
}

// analyzeRetryTimeouts reports an HTTP route with a timeout, retries and
// a perTryTimeout where (attempts+1) × perTryTimeout exceeds the timeout.
// Envoy's per_try_timeout bounds the initial attempt and every retry
// (envoy config/route/v3 RetryPolicy.per_try_timeout), while the route
// timeout bounds them all together (RouteAction.timeout); Istio's
// attempts is Envoy's num_retries. Backoff between tries only adds time,
// so it is left out of the sum. Without a timeout (Istio's default is
// none) nothing is reported.
func analyzeRetryTimeouts(c *Context) {
	for _, o := range c.Objects(config.KindVirtualService) {
		for i, r := range o.Spec.(*networking.VirtualService).GetHttp() {
			timeout := r.GetTimeout().AsDuration()
			perTry := r.GetRetries().GetPerTryTimeout().AsDuration()
			attempts := r.GetRetries().GetAttempts()
			if r.GetTimeout() == nil || timeout <= 0 || perTry <= 0 || attempts <= 0 {
				continue
			}
			total := time.Duration(attempts+1) * perTry
			if total > timeout {
				c.report(RetriesExceedTimeout, o, sprintf("{.spec.http[%d].timeout}", i), routeLabel(r, i), attempts, perTry, total, timeout)
			}
		}
	}
}
