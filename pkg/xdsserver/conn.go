package xdsserver

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-mesh/sluice/pkg/model"
)

// conn is one ADS stream of a proxy, state of the world or delta. One
// goroutine owns it: it handles the proxy's requests and, when a new
// snapshot is published, sends what changed; a second one only reads.
type conn struct {
	s       *Server
	ctx     context.Context
	st      *proxyState
	delta   bool
	version string // the proxy's version, for pilot_xds
	// wakeup is signalled when a snapshot is published for the proxy.
	wakeup  chan struct{}
	watches [numTypes]watch
}

// watch is what the proxy asked of one type on this stream and what it
// was sent.
type watch struct {
	// requested: the proxy subscribed to the type on this stream.
	requested bool
	// wildcard: every resource of the type (CDS and LDS); otherwise
	// names, sorted, interned to the snapshot's strings where possible.
	wildcard bool
	names    []string
	// nonce of the last response; requests with another nonce are stale.
	nonce string
	// sent is the version of the last response (SotW: of the list sent;
	// delta: of the proxy's whole view of the type).
	sent string
	// have is, for delta, what the proxy holds after the responses sent:
	// sorted by name. For a wildcard type it is the snapshot's own slice.
	have []*Resource
}

func (c *conn) protocol() string {
	if c.delta {
		return "delta"
	}
	return "sotw"
}

// wake asks the stream's goroutine to send what changed.
func (c *conn) wake() {
	select {
	case c.wakeup <- struct{}{}:
	default:
	}
}

// serve runs a stream: recv reads the next request, handle handles one
// (registering the proxy from the first), flush sends every type whose
// content changed since it was last sent.
func (c *conn) serve(ctx context.Context, recv func() (any, error), handle func(any) error, flush func() error) error {
	c.ctx = ctx
	reqs := make(chan any, 1)
	errc := make(chan error, 1)
	go func() {
		for {
			req, err := recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer c.s.disconnect(c)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		case req := <-reqs:
			if err := handle(req); err != nil {
				return err
			}
		case <-c.wakeup:
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// register makes the proxy known on its stream's first request.
func (c *conn) register(node *core.Node) error {
	if c.st != nil {
		return nil
	}
	if node == nil {
		return status.Error(codes.InvalidArgument, "first request on a stream carries no node")
	}
	p, err := model.ProxyFromNode(node)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	c.version = proxyVersion(node)
	c.s.connect(p, c)
	return nil
}

// snapshot is the proxy's published config (nil before its first push).
func (c *conn) snapshot() *Snapshot {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.st.snap
}

// requested books that the proxy asked for a type.
func (c *conn) requested(typeURL string) {
	c.s.mu.Lock()
	c.st.status(typeURL).requested = time.Now()
	c.s.mu.Unlock()
}

// acked books an ACK of version.
func (c *conn) acked(typeURL, version string) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	ts := c.st.status(typeURL)
	ts.AckedVersion = version
	ts.AckTime = time.Now()
	if ts.NackVersion != "" && ts.NackVersion != version {
		ts.Nack, ts.NackVersion = "", ""
	}
}

// nacked books a NACK of what was last sent. Like Istio, the rejected
// version is not sent again: the next change is.
func (c *conn) nacked(typeURL, message string) {
	c.s.opts.Metrics.rejected(typeURL)
	c.s.mu.Lock()
	ts := c.st.status(typeURL)
	ts.Nack = message
	ts.NackVersion = ts.SentVersion
	ts.NackTime = time.Now()
	version := ts.SentVersion
	c.s.mu.Unlock()
	c.s.opts.Logger.Warn("proxy rejected config (NACK)", "id", c.st.proxy.ID, "type", shortType(typeURL),
		"version", version, "error", message)
}

// recordSent books a response: its version, istiod's pilot_xds_pushes and
// pilot_xds_push_time, and, when it is the last type a change's push
// changed, pilot_proxy_convergence_time. snapVersion is the version of
// the snapshot's whole list of the type.
func (c *conn) recordSent(typeURL, version, snapVersion string, size int) {
	now := time.Now()
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	st := c.st
	ts := st.status(typeURL)
	ts.SentVersion = version
	start := st.pushStart
	if ts.requested.After(start) {
		start = ts.requested
	}
	c.s.opts.Metrics.sent(typeURL, size, now.Sub(start))
	if v, ok := st.converging[typeURL]; ok && v == snapVersion {
		delete(st.converging, typeURL)
		if len(st.converging) == 0 {
			c.s.opts.Metrics.convergence.Observe(now.Sub(st.changeStart).Seconds())
		}
	}
}

// send sends one response of size bytes within the server's send budget.
func (c *conn) send(size int, send func() error) error {
	n := min(int64(size)+1, c.s.opts.MaxSendBytes)
	if err := c.s.sending.Acquire(c.ctx, n); err != nil {
		return err
	}
	defer c.s.sending.Release(n)
	return send()
}

// wanted is the part of a type's list the watch asks for.
func (w *watch) wanted(all []*Resource) []*Resource {
	if w.wildcard {
		return all
	}
	out := make([]*Resource, 0, len(w.names))
	i := 0
	for _, n := range w.names { // both sorted: a merge walk
		for i < len(all) && all[i].Name < n {
			i++
		}
		if i < len(all) && all[i].Name == n {
			out = append(out, all[i])
		}
	}
	return out
}

// intern sorts names and swaps each for the snapshot's copy of the same
// string, so a proxy's subscription does not keep its own copies of
// thousands of names.
func intern(names []string, t *typeResources) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	out = slices.Compact(out)
	if t == nil {
		return out
	}
	for i, n := range out {
		if r := t.find(n); r != nil {
			out[i] = r.Name
		}
	}
	return out
}

// sortedNames reports whether two sorted lists are equal.
func sameSorted(a, b []string) bool {
	return slices.EqualFunc(a, b, func(x, y string) bool { return strings.Compare(x, y) == 0 })
}

// proxyVersion is the version a proxy announces, as istiod reads it
// (node metadata ISTIO_VERSION), else its user agent version.
func proxyVersion(n *core.Node) string {
	if v := n.GetMetadata().GetFields()["ISTIO_VERSION"].GetStringValue(); v != "" {
		return v
	}
	return n.GetUserAgentVersion()
}
