package xdsserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/sluice-mesh/sluice/pkg/model"
)

// PushRequest says what a push of one proxy is for. Requests for a proxy
// waiting in the queue are merged (istiod's PushRequest.CopyMerge).
type PushRequest struct {
	// Start is when the first change merged into the push was seen (zero
	// for a proxy's first push); pilot_proxy_convergence_time runs from it.
	Start time.Time
	// EndpointsOnly: only the endpoints of Hosts' services changed, so
	// only the EDS resources of their clusters are regenerated and sent,
	// and proxies holding none of those clusters are not touched.
	EndpointsOnly bool
	Hosts         map[string]struct{}
}

// merge folds b into a: a full push absorbs an endpoint-only one.
func (a PushRequest) merge(b PushRequest) PushRequest {
	out := a
	if out.Start.IsZero() || (!b.Start.IsZero() && b.Start.Before(out.Start)) {
		out.Start = b.Start
	}
	if !a.EndpointsOnly || !b.EndpointsOnly {
		out.EndpointsOnly, out.Hosts = false, nil
		return out
	}
	out.Hosts = make(map[string]struct{}, len(a.Hosts)+len(b.Hosts))
	for h := range a.Hosts {
		out.Hosts[h] = struct{}{}
	}
	for h := range b.Hosts {
		out.Hosts[h] = struct{}{}
	}
	return out
}

// PushAll queues a push for every connected proxy that want accepts (nil:
// all). It returns how many were queued and a wait that returns once each
// of them was generated and published (or dropped), so a caller can hold
// the next push back until this one is done, as istiod's debounce waits
// for the push in progress.
func (s *Server) PushAll(req PushRequest, want func(*model.Proxy) bool) (int, func()) {
	s.mu.Lock()
	proxies := make([]*model.Proxy, 0, len(s.proxies))
	for _, st := range s.proxies {
		if want == nil || want(st.proxy) {
			proxies = append(proxies, st.proxy)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(len(proxies))
	for _, p := range proxies {
		s.queue.enqueue(p, req, wg.Done)
	}
	return len(proxies), wg.Wait
}

// Push generates and publishes the config of one connected proxy now, in
// the caller's goroutine (a proxy not connected is skipped). Pushes for
// one proxy are serialised, so the queue's workers and Push cannot
// interleave, and a snapshot made from an older push context never
// replaces a newer one: versions only move forward. A snapshot that is
// not consistent (an RDS or EDS name referenced and not served) is not
// published: the proxy keeps its previous config, never half of a push.
func (s *Server) Push(p *model.Proxy) error { return s.push(p, PushRequest{}) }

// PushChange is Push for a config change first seen at changeStart: once
// every type the push changes for the proxy is sent, the time since
// changeStart is recorded in pilot_proxy_convergence_time (as istiod's
// pushConnection records its push request's Start).
func (s *Server) PushChange(p *model.Proxy, changeStart time.Time) error {
	return s.push(p, PushRequest{Start: changeStart})
}

// process is a queue worker's job.
func (s *Server) process(p *model.Proxy, req PushRequest) {
	if err := s.push(p, req); err != nil {
		s.opts.Logger.Error("push failed", "proxy", p.ID, "err", err)
	}
}

func (s *Server) push(p *model.Proxy, req PushRequest) error {
	s.mu.Lock()
	st := s.proxies[p.ID]
	var snap *Snapshot
	if st != nil {
		snap = st.snap
	}
	s.mu.Unlock()
	if st == nil {
		return nil
	}
	st.pushMu.Lock()
	defer st.pushMu.Unlock()
	start := time.Now() // generation starts
	if req.EndpointsOnly && snap != nil && s.opts.Endpoints != nil {
		return s.pushEndpoints(st, snap, req, start)
	}
	s.opts.Metrics.generations.WithLabelValues("full").Inc()
	res, version, err := s.opts.Versioned(p)
	if err != nil {
		return err
	}
	s.lists.rotate(version)
	next, err := buildSnapshot(res, snapshotOptions{
		resource: func(m types.Resource) (*Resource, error) { return s.marshal.get(m, version) },
		lists:    s.lists, vhds: s.vhds, version: version,
	})
	if err != nil {
		return fmt.Errorf("push %d to %s: %w", version, p.ID, err)
	}
	if err := next.Consistent(); err != nil {
		s.opts.Logger.Error("generated config is inconsistent (a sluice bug); the proxy keeps its previous config",
			"proxy", p.ID, "version", version, "err", err)
		return fmt.Errorf("push %d to %s: inconsistent snapshot, not published: %w", version, p.ID, err)
	}
	s.publish(st, next, version, req, start)
	return nil
}

// pushEndpoints regenerates only the EDS resources of the proxy's clusters
// that belong to req.Hosts and publishes the snapshot with them swapped
// in; a proxy holding none of them is not touched.
func (s *Server) pushEndpoints(st *proxyState, snap *Snapshot, req PushRequest, start time.Time) error {
	names := snap.types[edsIdx].namesOf(req.Hosts)
	if len(names) == 0 {
		return nil
	}
	s.opts.Metrics.generations.WithLabelValues("eds").Inc()
	clas, version, err := s.opts.Endpoints(st.proxy, names)
	if err != nil {
		return fmt.Errorf("endpoint push %d to %s: %w", version, st.proxy.ID, err)
	}
	updated := make([]*Resource, 0, len(clas))
	for _, cla := range clas {
		r, err := s.marshal.get(cla, version)
		if err != nil {
			return fmt.Errorf("endpoint push %d to %s: %w", version, st.proxy.ID, err)
		}
		updated = append(updated, r)
	}
	next, changed := snap.withEndpoints(updated)
	if !changed {
		return nil
	}
	s.publish(st, next, version, req, start)
	return nil
}

// publish makes next the proxy's config unless a newer one is published,
// and wakes its streams to send what changed.
func (s *Server) publish(st *proxyState, next *Snapshot, version uint64, req PushRequest, start time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proxies[st.proxy.ID] != st {
		return // disconnected meanwhile
	}
	if version < st.pushed {
		s.opts.Logger.Debug("older push dropped", "proxy", st.proxy.ID, "version", version, "published", st.pushed)
		return
	}
	st.pushStart = start
	st.converging = nil
	if !req.Start.IsZero() {
		st.changeStart = req.Start
		vhds := false
		for c := range st.conns {
			vhds = vhds || c.vhds
		}
		for t, ts := range st.types {
			if v := next.viewVersion(t, vhds); ts.SentVersion != "" && st.snap != nil && v != st.snap.viewVersion(t, vhds) {
				if st.converging == nil {
					st.converging = map[string]string{}
				}
				st.converging[t] = v
			}
		}
	}
	st.snap = next
	st.pushed = version
	for c := range st.conns {
		c.wake()
	}
}

// pushQueue holds the proxies waiting for a push, each once with its
// requests merged, and hands them to a bounded pool of workers; a proxy
// being pushed is not handed out again until that push is done (istiod's
// PushQueue: pilot/pkg/xds/pushqueue.go).
type pushQueue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	pending    map[string]*queued
	order      []string
	inProgress map[string]bool
	closed     bool
	do         func(*model.Proxy, PushRequest)
	// waited, if set, is told how long each proxy waited in the queue.
	waited func(time.Duration)
}

type queued struct {
	proxy *model.Proxy
	req   PushRequest
	since time.Time
	// done are called once the push is over.
	done []func()
}

func newPushQueue(do func(*model.Proxy, PushRequest)) *pushQueue {
	q := &pushQueue{pending: map[string]*queued{}, inProgress: map[string]bool{}, do: do}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// enqueue adds a push for p, merged with one already waiting; done (if
// not nil) is called once that push is over.
func (q *pushQueue) enqueue(p *model.Proxy, req PushRequest, done func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		if done != nil {
			done()
		}
		return
	}
	if w := q.pending[p.ID]; w != nil {
		w.req = w.req.merge(req)
		w.proxy = p
		if done != nil {
			w.done = append(w.done, done)
		}
		return
	}
	w := &queued{proxy: p, req: req, since: time.Now()}
	if done != nil {
		w.done = append(w.done, done)
	}
	q.pending[p.ID] = w
	if !q.inProgress[p.ID] {
		q.order = append(q.order, p.ID)
		q.cond.Signal()
	}
}

// next blocks until a proxy can be pushed; ok is false once closed.
func (q *pushQueue) next() (*queued, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, false
	}
	id := q.order[0]
	q.order = q.order[1:]
	w := q.pending[id]
	delete(q.pending, id)
	q.inProgress[id] = true
	return w, true
}

// done marks a proxy's push finished; a request that came meanwhile is
// queued again.
func (q *pushQueue) done(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inProgress, id)
	if q.pending[id] != nil {
		q.order = append(q.order, id)
		q.cond.Signal()
	}
}

// run starts n workers until ctx ends.
func (q *pushQueue) run(ctx context.Context, n int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				w, ok := q.next()
				if !ok {
					return
				}
				if q.waited != nil {
					q.waited(time.Since(w.since))
				}
				q.do(w.proxy, w.req)
				q.done(w.proxy.ID)
				for _, f := range w.done {
					f()
				}
			}
		})
	}
	go func() {
		<-ctx.Done()
		q.mu.Lock()
		q.closed = true
		q.cond.Broadcast()
		var waiting []func()
		for _, w := range q.pending {
			waiting = append(waiting, w.done...)
		}
		q.pending = map[string]*queued{}
		q.mu.Unlock()
		for _, f := range waiting {
			f() // nobody waits for a push that will not happen
		}
	}()
	return &wg
}
