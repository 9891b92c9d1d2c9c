package ztunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/hbone"
	"github.com/sluice-mesh/sluice/pkg/proxy/origdst"
	"github.com/sluice-mesh/sluice/pkg/proxy/tcpconn"
)

// idleTimeout closes a connection no byte crossed for this long
// (ztunnel has none by default; an hour bounds what a stuck peer holds).
const idleTimeout = time.Hour

// outbound carries a connection the pod's app made, captured on
// OutboundPort, to where it was going (ztunnel src/proxy/outbound.rs):
// a destination in the mesh over HBONE to its pod's HBONEPort, anything
// else as plain TCP from the pod.
func (p *pod) outbound(ctx context.Context, c net.Conn) {
	defer c.Close()
	dst, err := origdst.Get(c)
	if err != nil {
		p.log.Warn("outbound: no original destination", "err", err)
		return
	}
	src := addrPort(c.RemoteAddr())
	ix := p.node.index()
	up, ok := ix.findUpstream(p.wl, dst)
	if !ok {
		p.node.count("outbound", "no_healthy_upstream")
		p.log.Info("outbound refused: no healthy endpoint for the service port", "src", src, "dst", dst)
		return
	}
	target := netip.AddrPortFrom(up.ip, uint16(up.port))
	var upc net.Conn
	if up.wl != nil && up.wl.hbone() {
		upc, err = p.dialer.Dial(ctx, hbone.Target{
			Addr:      netip.AddrPortFrom(up.ip, HBONEPort).String(),
			Authority: target.String(),
			PeerIDs:   peerIDs(up, p.node.opts.TrustDomain),
			SourceID:  p.id.ID(),
			Header:    forwarded(src, up.service),
		})
	} else {
		upc, err = p.dial(ctx, "tcp", target.String(), netip.Addr{})
	}
	if err != nil {
		p.node.count("outbound", "connect_failed")
		p.log.Info("outbound connect failed", "src", src, "dst", dst, "upstream", target, "hbone", up.wl != nil && up.wl.hbone(), "err", err)
		return
	}
	defer upc.Close()
	p.node.count("outbound", "opened")
	tcpconn.Join(c, upc, idleTimeout)
}

// peerIDs are the identities the destination may present: the service's
// subject_alt_names when it sets them, else the workload's own identity.
func peerIDs(up upstream, td string) []string {
	if up.service != nil && len(up.service.GetSubjectAltNames()) > 0 {
		return up.service.GetSubjectAltNames()
	}
	return []string{up.wl.identity(td)}
}

// forwarded is ztunnel's build_forwarded: the client's address, and the
// service host when the destination was a service.
func forwarded(src netip.AddrPort, svc *service) http.Header {
	v := `for="` + src.String() + `"`
	if svc != nil {
		v += ";host=" + svc.GetHostname()
	}
	return http.Header{"Forwarded": {v}}
}

// inboundTunnel serves one HBONE CONNECT to this pod (ztunnel
// src/proxy/inbound.rs): the authority must be one of the pod's own
// addresses, the connection must be authorized (401 when not), then the
// app is dialled at that address from the client's address (503 when it
// cannot be).
func (p *pod) inboundTunnel(ctx context.Context, r *hbone.Request) (net.Conn, error) {
	dst, err := netip.ParseAddrPort(r.Authority)
	if err != nil {
		return nil, &hbone.StatusError{Code: http.StatusBadRequest, Reason: "authority " + strconv.Quote(r.Authority) + " is not ip:port"}
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if !slices.Contains(p.wl.ips, dst.Addr()) {
		return nil, &hbone.StatusError{Code: http.StatusBadRequest, Reason: "authority " + r.Authority + " is not this pod's address"}
	}
	src := addrPort(r.RemoteAddr)
	if d := p.authorize(conn{src: src, dst: dst, peer: r.PeerID}); !d.allowed {
		p.node.count("inbound", "denied")
		p.log.Info("connection denied", "src", src, "peer", r.PeerID, "dst", dst, "reason", d.reason)
		return nil, &hbone.StatusError{Code: http.StatusUnauthorized, Reason: d.reason}
	}
	app, err := p.dialApp(ctx, dst, src)
	if err != nil {
		p.node.count("inbound", "connect_failed")
		return nil, &hbone.StatusError{Code: http.StatusServiceUnavailable, Reason: err.Error()}
	}
	p.node.count("inbound", "opened")
	return app, nil
}

// inboundPlaintext serves a connection that reached the pod without a
// tunnel (captured on InboundPlaintextPort; ztunnel's
// inbound_passthrough.rs): authorized without a peer identity, so a
// policy requiring one (or STRICT mTLS, which istiod turns into such a
// policy) refuses it.
func (p *pod) inboundPlaintext(ctx context.Context, c net.Conn) {
	defer c.Close()
	dst, err := origdst.Get(c)
	if err != nil {
		p.log.Warn("inbound: no original destination", "err", err)
		return
	}
	src := addrPort(c.RemoteAddr())
	if d := p.authorize(conn{src: src, dst: dst}); !d.allowed {
		p.node.count("inbound_plaintext", "denied")
		p.log.Info("connection denied", "src", src, "dst", dst, "reason", d.reason)
		return
	}
	app, err := p.dialApp(ctx, dst, src)
	if err != nil {
		p.node.count("inbound_plaintext", "connect_failed")
		p.log.Info("inbound connect failed", "src", src, "dst", dst, "err", err)
		return
	}
	defer app.Close()
	p.node.count("inbound_plaintext", "opened")
	tcpconn.Join(c, app, idleTimeout)
}

// dialApp connects to the app in the pod. With Options.Transparent the
// connection keeps the client's address, as ztunnel's, through the
// pod's mark routing that `sluice capture --ambient` installs; without
// it, the app sees the pod's own address.
func (p *pod) dialApp(ctx context.Context, dst, src netip.AddrPort) (net.Conn, error) {
	var from netip.Addr
	if p.node.opts.Transparent && src.Addr() != dst.Addr() {
		from = src.Addr()
	}
	c, err := p.dial(ctx, "tcp", dst.String(), from)
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: connect to the app at %s: %w", p.spec.Namespace, p.spec.Name, dst, err)
	}
	return c, nil
}

// authorize decides a connection to the pod with the index in force: the
// pod's workload as it describes it now (its policies may have changed
// since the pod started). A pod the control plane no longer knows is
// refused: its policies are unknown.
func (p *pod) authorize(c conn) decision {
	ix := p.node.index()
	w := ix.workloads[p.wl.GetUid()]
	if w == nil {
		return decision{false, errNoWorkload.Error()}
	}
	return ix.authorize(w, c)
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

var errNoWorkload = errors.New("the control plane does not know this pod (yet)")
