package ztunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-mesh/sluice/pkg/netns"
	"github.com/sluice-mesh/sluice/pkg/proxy/hbone"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
)

// The in-pod ports and mark of Istio's ambient mode (istio-cni
// cni/pkg/config/config.go: ZtunnelOutboundPort, ZtunnelInboundPort,
// ZtunnelInboundPlaintextPort, InpodMark): the node proxy listens on them
// inside each pod's network namespace, and marks its own sockets there so
// the pod's capture rules let them through.
const (
	OutboundPort         = 15001
	InboundPlaintextPort = 15006
	HBONEPort            = 15008
	InpodMark            = 0x539
)

// PodSpec is a pod handed to the node proxy: the workload the control
// plane knows by namespace and name, and the network namespace its
// traffic is captured in (what istio-cni hands ztunnel over ZDS).
type PodSpec struct {
	Namespace, Name string
	// Netns is the path of the pod's network namespace
	// (/var/run/netns/<name>, /proc/<pid>/ns/net).
	Netns string
}

// pod is one served pod: its listeners in its namespace, its identity
// and its tunnel dialer.
type pod struct {
	spec   PodSpec
	node   *Node
	wl     *workload // as the control plane described it when the pod started
	id     *identity.Workload
	dialer *hbone.Dialer
	server *hbone.Server
	log    *slog.Logger
	// cancel ends the context its connections are handled with.
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners []net.Listener
}

// listen opens a TCP listener inside the pod's namespace.
func (p *pod) listen(port int) (net.Listener, error) {
	var l net.Listener
	err := netns.Do(p.spec.Netns, func() error {
		var err error
		// Dual-stack wildcard: REDIRECT delivers to the pod's own address.
		l, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: listen :%d: %w", p.spec.Namespace, p.spec.Name, port, err)
	}
	p.mu.Lock()
	p.listeners = append(p.listeners, l)
	p.mu.Unlock()
	return l, nil
}

// dial connects from inside the pod's namespace with the in-pod mark, so
// the pod's capture rules do not send the connection back to the node
// proxy (ztunnel's socket marks, src/socket.rs). A valid src binds the
// connection to that address with IP_TRANSPARENT (ztunnel's inbound
// keeps the client's address for the app).
func (p *pod) dial(ctx context.Context, network, addr string, src netip.Addr) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, InpodMark)
			if serr == nil && src.IsValid() {
				level, opt := unix.SOL_IP, unix.IP_TRANSPARENT
				if src.Is6() {
					level, opt = unix.SOL_IPV6, unix.IPV6_TRANSPARENT
				}
				serr = unix.SetsockoptInt(int(fd), level, opt, 1)
			}
		})
		return errors.Join(err, serr)
	}}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	var c net.Conn
	err := netns.Do(p.spec.Netns, func() error {
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// start opens the pod's three listeners and serves them.
func (p *pod) start(ctx context.Context) error {
	out, err := p.listen(OutboundPort)
	if err != nil {
		return err
	}
	plain, err := p.listen(InboundPlaintextPort)
	if err != nil {
		p.close()
		return err
	}
	tunnel, err := p.listen(HBONEPort)
	if err != nil {
		p.close()
		return err
	}
	p.dialer = hbone.NewDialer(hbone.DialerOptions{
		Certificate: p.id.Certificate,
		Roots:       p.id.Roots,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return p.dial(ctx, network, addr, netip.Addr{})
		},
	})
	p.server = hbone.NewServer(hbone.ServerOptions{
		Certificate: p.id.Certificate,
		Roots:       p.id.Roots,
		Handle:      p.inboundTunnel,
	})
	go p.acceptLoop(ctx, out, p.outbound)
	go p.acceptLoop(ctx, plain, p.inboundPlaintext)
	go func() {
		if err := p.server.Serve(tunnel); err != nil && ctx.Err() == nil {
			p.log.Warn("hbone listener ended", "err", err)
		}
	}()
	p.log.Info("pod captured", "workload", p.wl.GetUid(), "identity", p.id.ID(), "netns", p.spec.Netns,
		"ports", fmt.Sprintf("%d,%d,%d", OutboundPort, InboundPlaintextPort, HBONEPort))
	return nil
}

func (p *pod) acceptLoop(ctx context.Context, l net.Listener, handle func(context.Context, net.Conn)) {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: back off as net/http does.
			delay = min(max(delay*2, 5*time.Millisecond), time.Second)
			p.log.Warn("accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go handle(ctx, c)
	}
}

// close stops the pod's listeners and tunnels.
func (p *pod) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.listeners {
		l.Close()
	}
	p.listeners = nil
	if p.server != nil {
		p.server.Close()
	}
	if p.dialer != nil {
		p.dialer.Close()
	}
}
