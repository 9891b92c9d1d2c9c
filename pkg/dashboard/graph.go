package dashboard

import (
	"math"
	"sort"
)

// Node kinds.
const (
	KindWorkload = "workload"
	KindService  = "service"
	KindUnknown  = "unknown"
)

// Graph is the service graph of one window: workloads and services as
// nodes, traffic as edges, laid out in layers.
type Graph struct {
	Nodes  []Node `json:"nodes"`
	Edges  []Edge `json:"edges"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// Node is a workload, a service, or the unknown source.
type Node struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	// Health is the worst of its inbound and outbound request health.
	Health string `json:"health"`
	// RPS and ErrorRatio are of the requests it received (sent, for a
	// node that received none).
	RPS        float64 `json:"rps"`
	ErrorRatio float64 `json:"error_ratio"`
	Layer      int     `json:"layer"`
	X          int     `json:"x"`
	Y          int     `json:"y"`
}

// Edge is the traffic from one node to another.
type Edge struct {
	ID       string `json:"id"`
	Source   string `json:"source"`
	Target   string `json:"target"`
	Protocol string `json:"protocol"`
	Stats
}

// Stats summarise requests (or TCP bytes) over the window.
type Stats struct {
	RPS        float64 `json:"rps"`
	ErrorRatio float64 `json:"error_ratio"`
	// P50, P90, P99 are request durations in milliseconds, absent when
	// there were no requests.
	P50 *float64 `json:"p50_ms,omitempty"`
	P90 *float64 `json:"p90_ms,omitempty"`
	P99 *float64 `json:"p99_ms,omitempty"`
	// TCPBytes is bytes per second, both directions.
	TCPBytes float64 `json:"tcp_bytes_per_second"`
	// MTLS: mutual_tls (every request whose policy is known), partial,
	// none, or unknown (only the source side reported it).
	MTLS   string `json:"mtls"`
	Health string `json:"health"`
	// Codes are requests per second by response code.
	Codes map[string]float64 `json:"codes,omitempty"`
}

// agg accumulates series into Stats.
type agg struct {
	req, errs, mtls, plain, tcp float64
	buckets                     Counts
	codes                       map[string]float64
	protocol                    string
}

func (a *agg) add(k Key, c *Counts) {
	a.req += c.Requests
	if isError(k.ResponseCode) {
		a.errs += c.Requests
	}
	n := c.Requests + c.TCPOpened
	switch k.SecurityPolicy {
	case "mutual_tls":
		a.mtls += n
	case "none":
		a.plain += n
	}
	a.tcp += c.TCPSent + c.TCPReceived
	for _, b := range c.Buckets {
		a.buckets.addBucket(b.LE, b.Count)
	}
	if c.Requests > 0 {
		if a.codes == nil {
			a.codes = map[string]float64{}
		}
		a.codes[k.ResponseCode] += c.Requests
	}
	if a.protocol == "" || k.Protocol != "tcp" {
		a.protocol = k.Protocol
	}
}

func (a *agg) stats() Stats {
	s := Stats{RPS: a.req, TCPBytes: a.tcp, Health: healthOfCodes(a.req, a.codes), Codes: a.codes}
	if a.req > 0 {
		s.ErrorRatio = a.errs / a.req
	}
	s.P50, s.P90, s.P99 = q(0.5, a.buckets.Buckets), q(0.9, a.buckets.Buckets), q(0.99, a.buckets.Buckets)
	switch {
	case a.mtls > 0 && a.plain == 0:
		s.MTLS = "mutual_tls"
	case a.mtls > 0:
		s.MTLS = "partial"
	case a.plain > 0:
		s.MTLS = "none"
	default:
		s.MTLS = "unknown"
	}
	if a.req == 0 && a.tcp > 0 {
		s.Health = Healthy
	}
	return s
}

func q(p float64, b []Bucket) *float64 {
	v := quantile(p, b)
	if math.IsNaN(v) {
		return nil
	}
	v = math.Round(v*100) / 100
	return &v
}

// edgeKey is a pair of workloads through a service.
type edgeKey struct{ srcWL, srcNS, svc, dstWL, dstNS string }

// chosen keeps, for every source workload, service and destination
// workload, the series of one reporter: the destination's where it
// reported the traffic, else the source's (as Kiali prefers
// reporter="destination"). Proxy-made answers (503 UH, 404 NR) exist only
// on the source side and so are kept.
func chosen(rates map[Key]*Counts) map[Key]*Counts {
	hasDest := map[edgeKey]bool{}
	for k := range rates {
		if k.Reporter == "destination" {
			hasDest[edgeOf(k)] = true
		}
	}
	out := make(map[Key]*Counts, len(rates))
	for k, c := range rates {
		if (k.Reporter == "destination") == hasDest[edgeOf(k)] {
			out[k] = c
		}
	}
	return out
}

func edgeOf(k Key) edgeKey {
	return edgeKey{k.SourceWorkload, k.SourceNamespace, k.DestService, k.DestWorkload, k.DestNamespace}
}

// WorkloadID, ServiceID name graph nodes.
func WorkloadID(ns, name string) string { return "workload/" + ns + "/" + name }

// ServiceID names a service node by its host.
func ServiceID(host string) string { return "service/" + host }

func sourceNode(k Key) Node {
	if k.SourceWorkload == "unknown" {
		return Node{ID: KindUnknown, Kind: KindUnknown, Name: "unknown"}
	}
	return Node{ID: WorkloadID(k.SourceNamespace, k.SourceWorkload), Kind: KindWorkload, Name: k.SourceWorkload, Namespace: k.SourceNamespace}
}

func destNode(k Key) (Node, bool) {
	if k.DestWorkload == "unknown" {
		return Node{}, false
	}
	return Node{ID: WorkloadID(k.DestNamespace, k.DestWorkload), Kind: KindWorkload, Name: k.DestWorkload, Namespace: k.DestNamespace}, true
}

func serviceNode(k Key) (Node, bool) {
	if k.DestService == "unknown" || k.DestService == "" {
		return Node{}, false
	}
	return Node{ID: ServiceID(k.DestService), Kind: KindService, Name: k.DestService, Namespace: namespaceOfHost(k.DestService)}, true
}

// BuildGraph turns a window's traffic into the graph: source workload ->
// service -> destination workload (source -> destination workload when
// the traffic names no service, as inbound TCP).
func BuildGraph(t *Traffic) Graph {
	nodes := map[string]*Node{}
	edges := map[string]*agg{}
	ends := map[string][2]string{}
	in, out := map[string]*agg{}, map[string]*agg{}
	addNode := func(n Node) string {
		if nodes[n.ID] == nil {
			nn := n
			nodes[n.ID] = &nn
		}
		return n.ID
	}
	addEdge := func(from, to string, k Key, c *Counts) {
		id := from + ">" + to
		for _, m := range []struct {
			id  string
			set map[string]*agg
		}{{id, edges}, {to, in}, {from, out}} {
			if m.set[m.id] == nil {
				m.set[m.id] = &agg{}
			}
			m.set[m.id].add(k, c)
		}
		ends[id] = [2]string{from, to}
	}
	for k, c := range chosen(t.Rates) {
		src := addNode(sourceNode(k))
		dst, hasDst := destNode(k)
		svc, hasSvc := serviceNode(k)
		switch {
		case hasSvc:
			addEdge(src, addNode(svc), k, c)
			if hasDst {
				addEdge(svc.ID, addNode(dst), k, c)
			}
		case hasDst:
			addEdge(src, addNode(dst), k, c)
		}
	}
	g := Graph{Nodes: []Node{}, Edges: []Edge{}}
	for id, n := range nodes {
		n.Health = Idle
		var s Stats
		if a := in[id]; a != nil {
			s = a.stats()
			n.Health = s.Health
		}
		if a := out[id]; a != nil {
			o := a.stats()
			n.Health = worse(n.Health, o.Health)
			if in[id] == nil {
				s = o
			}
		}
		n.RPS, n.ErrorRatio = s.RPS, s.ErrorRatio
		g.Nodes = append(g.Nodes, *n)
	}
	for id, a := range edges {
		e := Edge{ID: id, Source: ends[id][0], Target: ends[id][1], Protocol: a.protocol, Stats: a.stats()}
		e.Codes = nil
		g.Edges = append(g.Edges, e)
	}
	sort.Slice(g.Edges, func(i, j int) bool { return g.Edges[i].ID < g.Edges[j].ID })
	layout(&g)
	return g
}
