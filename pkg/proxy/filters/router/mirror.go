package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/sluice-mesh/sluice/internal/hostport"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	routes "github.com/sluice-mesh/sluice/pkg/proxy/router"
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

// shadowHost is Envoy's shadowAppendedHost: "-shadow" after the host,
// before any port.
func shadowHost(host string) string {
	if i := hostport.PortIndex(host); i >= 0 {
		return host[:i] + "-shadow" + host[i:]
	}
	return host + "-shadow"
}

// mirror sends the route's mirror copies of r that their percentages
// select. body is the whole request body (nil for none); bodyOK false
// means the body could not be kept, and selected copies are dropped.
func mirror(s *httpfilter.Stream, rte *routes.Route, cfg *Config, body []byte, bodyOK bool) {
	r, decorate := s.R, s.Info.EgressTracing
	st := s.Proxy.Filter(slot).(*ProxyStats)
	for i := range cfg.Mirrors {
		mp := &cfg.Mirrors[i]
		if !mp.Fraction.Sample(rand.Uint64()) {
			continue
		}
		if !bodyOK {
			st.Mirror.DroppedBody.Add(1)
			continue
		}
		cl := s.Clusters[mp.Cluster]
		if cl == nil {
			st.Mirror.DroppedNoCluster.Add(1)
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
		timeout := cfg.Timeout
		if timeout <= 0 || timeout > MirrorTimeout {
			timeout = MirrorTimeout
		}
		st.Mirror.Sent.Add(1)
		st.inFlight.Add(1)
		go func() {
			defer st.inFlight.Add(-1)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			res := attempt(&attemptRequest{downstream: sr, route: &mrte, cfg: cfg, cluster: cl, ctx: ctx, decorate: decorate})
			switch {
			case errors.Is(res.err, upstream.ErrOverflow) || isOverflow(res.err):
				st.Mirror.DroppedOverflow.Add(1)
				return
			case res.err != nil:
				st.Mirror.Failed.Add(1)
				return
			}
			drainAndClose(res.resp.Body)
		}()
	}
}
