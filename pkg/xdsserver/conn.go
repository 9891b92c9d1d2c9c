package xdsserver

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"slices"
	"sync"
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
	s     *Server
	ctx   context.Context
	st    *proxyState
	delta bool
	// vhds: route configurations are sent in VHDS form (a delta stream
	// of a server that splits them; vhds.go).
	vhds    bool
	version string // the proxy's version, for pilot_xds
	// wakeup is signalled when a snapshot is published for the proxy.
	wakeup  chan struct{}
	watches [numTypes]watch

	// flights are the responses sent and not yet ACKed or NACKed, with the
	// share of the server's send budget each holds (guarded by flightMu:
	// the receiving goroutine releases them).
	flightMu sync.Mutex
	flights  map[string]flight
}

// flight is one unanswered response: its type and budget bytes.
type flight struct {
	idx int
	n   int64
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
	// namespaces: names are route configuration names under which every
	// virtual host is wanted (VHDS).
	namespaces bool
	// answer: a name was subscribed since the last response, which is
	// then sent even when nothing changed (the proxy waits for it).
	answer bool
	// interned: names share the snapshot's strings (false when they came
	// before the proxy's first snapshot; wanted interns them then).
	interned bool
	// nonce of the last response; requests with another nonce are stale.
	nonce string
	// sent is the version of the last response (SotW: of the list sent;
	// delta: of the proxy's whole view of the type).
	sent string
	// have is, for delta, what the proxy holds after the responses sent:
	// sorted by name. For a wildcard type it is the snapshot's own slice.
	have []*Resource
	// from is, for delta, the snapshot list have was last computed from
	// (the same slice: lists are shared and never changed); a flush that
	// finds the same list and no subscription change has nothing to do.
	from []*Resource
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
	in := &mailbox{ready: make(chan struct{}, 1)}
	errc := make(chan error, 1)
	defer c.settle(func(flight) bool { return true })
	// The reader never blocks on the handler: an answer must release its
	// send budget even while this stream waits for budget to send.
	go func() {
		for {
			req, err := recv()
			if err != nil {
				errc <- err
				return
			}
			if r, ok := req.(interface{ GetResponseNonce() string }); ok && r.GetResponseNonce() != "" {
				c.answered(r.GetResponseNonce())
			}
			in.put(req)
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
		case <-in.ready:
			for _, req := range in.take() {
				if err := handle(req); err != nil {
					return err
				}
			}
		case <-c.wakeup:
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// mailbox is an unbounded queue of a stream's requests. A proxy sends a
// few requests per response it gets, so it stays short.
type mailbox struct {
	mu    sync.Mutex
	items []any
	ready chan struct{}
}

func (m *mailbox) put(v any) {
	m.mu.Lock()
	m.items = append(m.items, v)
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

func (m *mailbox) take() []any {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.items
	m.items = nil
	return out
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

// begin registers the proxy on its stream's first request and finds the
// watch of the type a request is about; ok is false for a type not served.
func (c *conn) begin(node *core.Node, typeURL string) (idx int, ok bool, err error) {
	if err := c.register(node); err != nil {
		return 0, false, err
	}
	idx = typeIndex(typeURL)
	if !c.delta && wdsType(idx) {
		return 0, false, status.Errorf(codes.InvalidArgument,
			"%s is served on delta (incremental) ADS streams only, as istiod serves ztunnel; this stream is state of the world", typeURL)
	}
	if idx < 0 || (idx == vhdsIdx && !c.vhds) {
		c.s.opts.Logger.Debug("request for a type not served", "id", c.st.proxy.ID, "type", typeURL)
		return 0, false, nil
	}
	c.requested(typeURL)
	return idx, true, nil
}

// flushAll sends, type by type in push order, what changed since sent.
func (c *conn) flushAll(send func(idx int, snap *Snapshot) error) error {
	snap := c.snapshot()
	for idx := range numTypes {
		if err := send(idx, snap); err != nil {
			return err
		}
	}
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

// send sends one response within the server's send budget. The budget a
// response takes is held until the proxy answers it (ACK or NACK), or a
// newer response of the type is sent, or the stream ends: a serialized
// response stays in memory until the proxy has read it, and its answer is
// the sign that it has (istiod's flow control waits for the ACK alike).
// The answer is noticed by the stream's reading goroutine, so a stream
// waiting for budget still frees what its own proxy answers.
func (c *conn) send(idx int, nonce string, size int, send func() error) error {
	c.settle(func(f flight) bool { return f.idx == idx })
	n := min(int64(size)+1, c.s.opts.MaxSendBytes)
	if err := c.s.sending.Acquire(c.ctx, n); err != nil {
		return err
	}
	c.flightMu.Lock()
	if c.flights == nil {
		c.flights = map[string]flight{}
	}
	c.flights[nonce] = flight{idx: idx, n: n}
	c.flightMu.Unlock()
	return send()
}

// answered releases the budget of the response a request answers.
func (c *conn) answered(nonce string) {
	c.flightMu.Lock()
	f, ok := c.flights[nonce]
	delete(c.flights, nonce)
	c.flightMu.Unlock()
	if ok {
		c.s.sending.Release(f.n)
	}
}

// settle releases the budget of every flight match accepts.
func (c *conn) settle(match func(flight) bool) {
	c.flightMu.Lock()
	var n int64
	for nonce, f := range c.flights {
		if match(f) {
			n += f.n
			delete(c.flights, nonce)
		}
	}
	c.flightMu.Unlock()
	if n > 0 {
		c.s.sending.Release(n)
	}
}

// wanted is the part of a type's list the watch asks for.
func (w *watch) wanted(t *typeResources) []*Resource {
	all := t.items
	if w.wildcard {
		return all
	}
	if w.namespaces {
		n := 0
		for _, r := range all {
			if inNamespace(r.Name, w.names) {
				n++
			}
		}
		if n == len(all) {
			return all // the usual case: every route configuration's hosts
		}
		out := make([]*Resource, 0, n)
		for _, r := range all {
			if inNamespace(r.Name, w.names) {
				out = append(out, r)
			}
		}
		return out
	}
	if !w.interned {
		w.names, w.interned = intern(w.names, t), true
	}
	if len(w.names) == len(all) && slices.EqualFunc(w.names, all, func(n string, r *Resource) bool { return n == r.Name }) {
		return all // the usual case: the proxy wants every EDS/RDS resource there is
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
		return sharedNames(out)
	}
	for i, n := range out {
		if r := t.find(n); r != nil {
			out[i] = r.Name
		}
	}
	return sharedNames(out)
}

// sharedNames returns a list equal to names that other watches may hold
// too: the proxies of one view subscribe the same thousand EDS names, and
// need not each keep the list (nobody changes a watch's names in place).
func sharedNames(names []string) []string {
	if len(names) < minShared {
		return names
	}
	h := fnv.New64a()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	k := h.Sum64()
	nameLists.Lock()
	defer nameLists.Unlock()
	if have, ok := nameLists.m[k]; ok && slices.Equal(have, names) {
		return have
	}
	if len(nameLists.m) >= maxNameLists {
		clear(nameLists.m) // bounded: start over rather than grow
	}
	nameLists.m[k] = names
	return names
}

// maxNameLists bounds nameLists: a few lists per view.
const maxNameLists = 1 << 14

var nameLists = struct {
	sync.Mutex
	m map[uint64][]string
}{m: map[uint64][]string{}}

// proxyVersion is the version a proxy announces, as istiod reads it
// (node metadata ISTIO_VERSION), else its user agent version.
func proxyVersion(n *core.Node) string {
	if v := n.GetMetadata().GetFields()["ISTIO_VERSION"].GetStringValue(); v != "" {
		return v
	}
	return n.GetUserAgentVersion()
}
