package router

import (
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	routes "github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/tcpconn"
)

// CONNECT termination, as Envoy's router does it when the HCM's
// upgrade_configs list CONNECT and the matched route (connect_matcher)
// enables CONNECT with a connect_config
// (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/http/upgrades#tunneling-tcp-over-http):
// the proxy connects to a host of the route's cluster (for a passthrough
// cluster, to the CONNECT's authority), answers 200, and from then on the
// client connection carries raw TCP to that host. This lets a local app
// use the sidecar as its HTTP(S) forward proxy (HTTPS_PROXY, curl -x).
// Errors before the tunnel opens are answered with a status and a
// one-line reason; after the 200, a failure closes the tunnel. The
// connection is made and the bytes copied by the TCP proxy's own code
// (tcpconn.Dial, Upstream.Pipe): limits, host picking, half-close and the
// idle timeout are the tcp_proxy's.

// connect serves a CONNECT request matched by a CONNECT-terminating route.
func connect(s *httpfilter.Stream, rte *routes.Route, cfg *Config) {
	w, r, info := s.W, s.R, &s.Info
	if r.ProtoMajor != 1 {
		// An HTTP/2 CONNECT is a stream, not a connection to hand over.
		localReply(w, info, http.StatusNotImplemented, 0, "CONNECT over HTTP/2 is not supported; use HTTP/1.1")
		return
	}
	name, _ := rte.Action.PickCluster()
	info.Cluster = name
	if ln, ok := s.Internal[name]; ok {
		connectInternal(s, ln, cfg)
		return
	}
	cl := s.Clusters[name]
	if cl == nil {
		w.Header().Set("Connection", "close")
		localReply(w, info, http.StatusServiceUnavailable, httpfilter.FlagNC, "CONNECT "+r.Host+": cluster "+name+" not found (route "+rte.Name+")")
		return
	}
	up, err := tcpconn.Dial(r.Context(), cl, r.Host)
	if err != nil {
		status, flag := connectFailure(err)
		w.Header().Set("Connection", "close")
		localReply(w, info, status, flag, "CONNECT "+r.Host+": cluster "+name+": "+err.Error())
		return
	}
	pr := up.Principals()
	info.UpstreamLocalPrincipal, info.UpstreamPeerPrincipal = pr.Local, pr.Peer
	tunnel, ok := openTunnel(s, cfg)
	if !ok {
		up.Close()
		return
	}
	defer tunnel.Close()
	up.Pipe(tunnel, tcpconn.DefaultIdleTimeout)
}

// connectInternal opens the tunnel and serves it on internal listener ln:
// a CONNECT to an HTTP service port. Captured TCP on an HTTP port is
// parsed as HTTP by the sidecar and routed by the HTTP route table
// (Istio's outbound HTTP listeners), so a tunnel to one is too: the route
// sends it to a cluster whose endpoint is an internal listener
// (dataplane/internal.go), and the tunnel's bytes are served as HTTP/1.1 by
// that listener's connection manager, with its route table. In Envoy the
// same config makes the router open a connection to the internal listener;
// here the proxy hands the tunnel to it directly.
func connectInternal(s *httpfilter.Stream, ln string, cfg *Config) {
	w, r, info := s.W, s.R, &s.Info
	if s.InternalServer == nil || !s.InternalServer.HasInternal(ln) {
		w.Header().Set("Connection", "close")
		localReply(w, info, http.StatusServiceUnavailable, httpfilter.FlagNC, "CONNECT "+r.Host+": internal listener "+ln+" of cluster "+info.Cluster+" not found")
		return
	}
	tunnel, ok := openTunnel(s, cfg)
	if !ok {
		return
	}
	s.InternalServer.ServeInternal(tunnel, ln)
}

// openTunnel takes over the client connection and answers 200; the
// connection returned reads first what the client sent right after its
// CONNECT (a TLS ClientHello sent without waiting for the 200).
func openTunnel(s *httpfilter.Stream, cfg *Config) (net.Conn, bool) {
	w, info := s.W, &s.Info
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		localReply(w, info, http.StatusInternalServerError, 0, "CONNECT: cannot take over the client connection: "+err.Error())
		return nil, false
	}
	hdr := http.Header{}
	cfg.RespOps.Apply(hdr)
	stripDecorator(hdr, info)
	info.Status = http.StatusOK
	brw.WriteString("HTTP/1.1 200 OK\r\n")
	hdr.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		conn.Close()
		return nil, false
	}
	return tcpconn.Buffered(conn, brw.Reader), true
}

// connectFailure is the answer to a CONNECT whose upstream connection
// could not be made, with Envoy's response flag.
func connectFailure(err error) (int, httpfilter.Flags) {
	switch {
	case errors.Is(err, tcpconn.ErrOverflow):
		return http.StatusServiceUnavailable, httpfilter.FlagUO
	case errors.Is(err, tcpconn.ErrNoHealthyHost):
		return http.StatusServiceUnavailable, httpfilter.FlagUH
	case errors.Is(err, tcpconn.ErrNoDestination):
		return http.StatusBadGateway, 0
	}
	return http.StatusServiceUnavailable, httpfilter.FlagUF
}

// connectRefused answers a CONNECT that a bodiless direct response
// refuses (REGISTRY_ONLY's block_all answers 502 this way) as the proxy's
// other local replies: the one-line reason in the body and
// X-Sluice-Reason, and the connection closed. The tunnel is not opened.
func connectRefused(s *httpfilter.Stream, rte *routes.Route, cfg *Config) {
	w, r, info := s.W, s.R, &s.Info
	cfg.RespOps.Apply(w.Header())
	stripDecorator(w.Header(), info)
	w.Header().Set("Connection", "close")
	localReply(w, info, rte.Action.Status, 0,
		"CONNECT "+r.Host+": refused by route "+rte.Name+" ("+rte.VHost+") with "+strconv.Itoa(rte.Action.Status))
}
