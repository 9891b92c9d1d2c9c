package httpproxy

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/router"
)

// faultAbortReason is Envoy's body for an injected abort.
const faultAbortReason = "fault filter abort"

// injectFault applies a route's fault the way Envoy's fault filter does,
// before the route's action: first the delay (for its percentage of
// requests), then the abort (for its percentage), answered by the proxy
// without contacting any upstream. It runs once per request, so a fault is
// never retried. It reports whether the request has been answered (an
// abort, or the client leaving during the delay).
func (h *Handler) injectFault(w http.ResponseWriter, r *http.Request, f *router.Fault, rte *router.Route, info *RequestInfo) bool {
	if f.HasDelay && f.DelayPercent.Sample(rand.Uint64()) {
		info.Flags |= FlagDI
		h.stats.Listener(info.statPrefix).DelaysInjected.Add(1)
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			info.Flags |= FlagDC
			info.Status = 499
			w.WriteHeader(499) // nobody reads it; Envoy logs 0/DC
			return true
		}
	}
	if f.HasAbort && f.AbortPercent.Sample(rand.Uint64()) {
		info.Flags |= FlagFI
		h.stats.Listener(info.statPrefix).AbortsInjected.Add(1)
		reason := faultAbortReason + ": route " + rte.Name
		if f.AbortGRPC >= 0 {
			// A gRPC abort is a trailers-only gRPC answer, as Envoy's local
			// reply for gRPC requests.
			hdr := w.Header()
			hdr.Set("Content-Type", "application/grpc")
			hdr.Set("Grpc-Status", strconv.Itoa(f.AbortGRPC))
			hdr.Set("Grpc-Message", faultAbortReason)
			hdr.Set("X-Sluice-Reason", reason)
			hdr.Set(ResponseFlagsHeader, info.Flags.String())
			info.Status = http.StatusOK
			w.WriteHeader(http.StatusOK)
			return true
		}
		body := reason
		if f.AbortBody != "" {
			body = f.AbortBody
		}
		h.reply(w, info, f.AbortStatus, 0, reason, body)
		return true
	}
	return false
}
