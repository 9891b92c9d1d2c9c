package httpproxy

import (
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/tcpproxy"
)

// CONNECT termination, as Envoy does it when the HCM's upgrade_configs
// list CONNECT and the matched route (connect_matcher) enables CONNECT
// with a connect_config
// (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/http/upgrades#tunneling-tcp-over-http):
// the proxy connects to a host of the route's cluster (for a passthrough
// cluster, to the CONNECT's authority), answers 200, and from then on the
// client connection carries raw TCP to that host. This lets a local app
// use the sidecar as its HTTP(S) forward proxy (HTTPS_PROXY, curl -x).
// Errors before the tunnel opens are answered with a status and a
// one-line reason; after the 200, a failure closes the tunnel. The
// connection is made and the bytes copied by the TCP proxy's own code
// (tcpproxy.Dial, Upstream.Pipe): limits, host picking, half-close and the
// idle timeout are the tcp_proxy's.

// connect serves a CONNECT request matched by a CONNECT-terminating route.
func (h *Handler) connect(w http.ResponseWriter, r *http.Request, rt *dataplane.Runtime, rte *router.Route, info *RequestInfo) {
	if r.ProtoMajor != 1 {
		// An HTTP/2 CONNECT is a stream, not a connection to hand over.
		h.localReply(w, info, http.StatusNotImplemented, 0, "CONNECT over HTTP/2 is not supported; use HTTP/1.1")
		return
	}
	name, _ := rte.Action.PickCluster()
	info.Cluster = name
	if ln, ok := rt.Internal[name]; ok {
		h.connectInternal(w, r, rt, ln, rte, info)
		return
	}
	cl := rt.Clusters[name]
	if cl == nil {
		w.Header().Set("Connection", "close")
		h.localReply(w, info, http.StatusServiceUnavailable, FlagNC, "CONNECT "+r.Host+": cluster "+name+" not found (route "+rte.Name+")")
		return
	}
	up, err := tcpproxy.Dial(r.Context(), cl, r.Host)
	if err != nil {
		status, flag := connectFailure(err)
		w.Header().Set("Connection", "close")
		h.localReply(w, info, status, flag, "CONNECT "+r.Host+": cluster "+name+": "+err.Error())
		return
	}
	tunnel, ok := h.openTunnel(w, rte, info)
	if !ok {
		up.Close()
		return
	}
	defer tunnel.Close()
	up.Pipe(tunnel, tcpproxy.DefaultIdleTimeout)
}

// openTunnel takes over the client connection and answers 200; the
// connection returned reads first what the client sent right after its
// CONNECT (a TLS ClientHello sent without waiting for the 200).
func (h *Handler) openTunnel(w http.ResponseWriter, rte *router.Route, info *RequestInfo) (net.Conn, bool) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.localReply(w, info, http.StatusInternalServerError, 0, "CONNECT: cannot take over the client connection: "+err.Error())
		return nil, false
	}
	hdr := http.Header{}
	rte.RespOps.Apply(hdr)
	stripDecorator(hdr, info)
	info.Status = http.StatusOK
	brw.WriteString("HTTP/1.1 200 OK\r\n")
	hdr.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		conn.Close()
		return nil, false
	}
	return tcpproxy.Buffered(conn, brw.Reader), true
}

// connectFailure is the answer to a CONNECT whose upstream connection
// could not be made, with Envoy's response flag.
func connectFailure(err error) (int, Flags) {
	switch {
	case errors.Is(err, tcpproxy.ErrOverflow):
		return http.StatusServiceUnavailable, FlagUO
	case errors.Is(err, tcpproxy.ErrNoHealthyHost):
		return http.StatusServiceUnavailable, FlagUH
	case errors.Is(err, tcpproxy.ErrNoDestination):
		return http.StatusBadGateway, 0
	}
	return http.StatusServiceUnavailable, FlagUF
}

// connectRefused answers a CONNECT that a bodiless direct response
// refuses (REGISTRY_ONLY's block_all answers 502 this way) as the proxy's
// other local replies: the one-line reason in the body and
// X-Sluice-Reason, and the connection closed. The tunnel is not opened.
func (h *Handler) connectRefused(w http.ResponseWriter, r *http.Request, rte *router.Route, info *RequestInfo) {
	rte.RespOps.Apply(w.Header())
	stripDecorator(w.Header(), info)
	w.Header().Set("Connection", "close")
	h.localReply(w, info, rte.Action.Status, 0,
		"CONNECT "+r.Host+": refused by route "+rte.Name+" ("+rte.VHost+") with "+strconv.Itoa(rte.Action.Status))
}
