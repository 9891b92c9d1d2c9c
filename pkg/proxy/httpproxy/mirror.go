package httpproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// isOverflow reports whether err is a circuit breaker's refusal.
func isOverflow(err error) bool {
	var f *upstreamFailure
	return errors.As(err, &f) && f.flag == FlagUO
}

// Mirroring (request_mirror_policies) sends a copy of a request to
// another cluster and drops the answer; the client only ever sees the
// primary's answer, and the primary never waits for a mirror.
//
// Cost is bounded:
//   - by the mirror cluster's circuit breakers only, as in Envoy (Istio's
//     defaults are effectively unbounded): a shadow request is admitted
//     like any other request to that cluster, and a copy the breakers
//     refuse is dropped and counted (sluice.mirror.dropped_overflow);
//   - a request without a body is mirrored when it arrives; one with a
//     body is mirrored after the primary exchange, and only if the whole
//     body was read within the route's buffer limit (DefaultBufferLimit);
//     otherwise the copy is dropped and counted (dropped_body);
//   - a shadow request is bounded by the route timeout, and by
//     MirrorTimeout when the route has none;
//   - its answer is read (up to 64 KiB, so the connection is reused) and
//     discarded.
//
// The copy's Host gets Envoy's "-shadow" suffix on the host part
// ("web:8080" becomes "web-shadow:8080") unless the policy disables it.

// MirrorTimeout bounds a shadow request on a route without a timeout.
const MirrorTimeout = 30 * time.Second

// Shared is the state every listener's handler of one proxy shares.
type Shared struct {
	Stats   *Stats
	mirrors atomic.Int64
}

// NewShared makes the shared state.
func NewShared() *Shared { return &Shared{Stats: NewStats()} }

// MirrorsInFlight is the number of shadow requests being sent.
func (s *Shared) MirrorsInFlight() int64 { return s.mirrors.Load() }

// shadowHost is Envoy's shadowAppendedHost: "-shadow" after the host,
// before any port.
func shadowHost(host string) string {
	if i := portStart(host); i >= 0 {
		return host[:i] + "-shadow" + host[i:]
	}
	return host + "-shadow"
}

// portStart is the index of the ":" before a port, or -1 (IPv6 literals
// keep their brackets).
func portStart(host string) int {
	i := strings.LastIndexByte(host, ':')
	if i < 0 {
		return -1
	}
	if strings.HasPrefix(host, "[") {
		if j := strings.LastIndexByte(host, ']'); j > i || j < 0 {
			return -1
		}
	} else if strings.IndexByte(host, ':') != i {
		return -1 // a bare IPv6 address without brackets has no port
	}
	return i
}

// mirror sends the route's mirror copies of r that their percentages
// select. body is the whole request body (nil for none); bodyOK false
// means the body could not be kept, and selected copies are dropped.
func (h *Handler) mirror(r *http.Request, rt *dataplane.Runtime, rte *router.Route, body []byte, bodyOK, decorate bool) {
	for i := range rte.Action.Mirrors {
		mp := &rte.Action.Mirrors[i]
		if !mp.Fraction.Sample(rand.Uint64()) {
			continue
		}
		if !bodyOK {
			h.stats.Mirror.DroppedBody.Add(1)
			continue
		}
		cl := rt.Clusters[mp.Cluster]
		if cl == nil {
			h.stats.Mirror.DroppedNoCluster.Add(1)
			continue
		}
		// The copy is built here, before the primary's attempts touch the
		// request's headers.
		host := r.Host
		if rte.Action.HostRewrite != "" {
			host = rte.Action.HostRewrite
		}
		if !mp.KeepHost {
			host = shadowHost(host)
		}
		mrte := *rte
		mrte.Action.HostRewrite = host
		sr := &http.Request{
			Method:     r.Method,
			URL:        r.URL,
			RequestURI: r.RequestURI,
			Proto:      r.Proto, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
			Header:     r.Header.Clone(),
			Host:       host,
			RemoteAddr: r.RemoteAddr,
			TLS:        r.TLS,
			Body:       http.NoBody,
		}
		delete(sr.Header, "X-Envoy-Attempt-Count")
		if len(body) > 0 {
			sr.Body = io.NopCloser(bytes.NewReader(body))
			sr.ContentLength = int64(len(body))
		}
		timeout := rte.Action.Timeout
		if timeout <= 0 || timeout > MirrorTimeout {
			timeout = MirrorTimeout
		}
		h.stats.Mirror.Sent.Add(1)
		h.shared.mirrors.Add(1)
		go func() {
			defer h.shared.mirrors.Add(-1)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			res := h.attempt(&attemptRequest{downstream: sr, route: &mrte, cluster: cl, ctx: ctx, decorate: decorate})
			switch {
			case errors.Is(res.err, upstream.ErrOverflow) || isOverflow(res.err):
				h.stats.Mirror.DroppedOverflow.Add(1)
				return
			case res.err != nil:
				h.stats.Mirror.Failed.Add(1)
				return
			}
			drainAndClose(res.resp.Body)
		}()
	}
}
