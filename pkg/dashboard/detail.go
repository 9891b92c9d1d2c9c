package dashboard

import (
	"github.com/sluice-mesh/sluice/pkg/inspect"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

// Detail is the page of one service or workload.
type Detail struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Health    string `json:"health"`
	// Inbound is the traffic it received; Outbound what it sent (a
	// service sends nothing of its own: its outbound is to its workloads).
	Inbound  Stats `json:"inbound"`
	Outbound Stats `json:"outbound"`
	// Callers and Callees are the neighbours with the edge's traffic.
	Callers []Neighbour `json:"callers"`
	Callees []Neighbour `json:"callees"`
	// Config is what applies to it.
	Config []ConfigRef `json:"config"`
	// Labels and Proxies are a workload's (its sidecars, with sync state).
	Labels  map[string]string  `json:"labels,omitempty"`
	Proxies []inspect.ProxyRow `json:"proxies,omitempty"`
}

// Neighbour is a node at the other end of an edge.
type Neighbour struct {
	Node
	Edge Stats `json:"edge"`
}

// detailInput is what a detail page is made from.
type detailInput struct {
	traffic *Traffic
	graph   Graph
	push    *model.PushContext
	proxies []xdsserver.ProxyStatus
	istiod  string
}

// serviceDetail is the page of the service host.
func serviceDetail(in detailInput, host string) Detail {
	d := Detail{ID: ServiceID(host), Kind: KindService, Name: host, Namespace: namespaceOfHost(host)}
	var inAgg, outAgg agg
	for k, c := range chosen(in.traffic.Rates) {
		if k.DestService == host {
			inAgg.add(k, c)
			if k.DestWorkload != "unknown" {
				outAgg.add(k, c)
			}
		}
	}
	d.Inbound, d.Outbound = inAgg.stats(), outAgg.stats()
	d.Health = d.Inbound.Health
	d.Callers, d.Callees = neighbours(in.graph, d.ID)
	d.Config = serviceConfig(in.push, host)
	return d
}

// workloadDetail is the page of the workload ns/name.
func workloadDetail(in detailInput, ns, name string) Detail {
	d := Detail{ID: WorkloadID(ns, name), Kind: KindWorkload, Name: name, Namespace: ns}
	var inAgg, outAgg agg
	for k, c := range chosen(in.traffic.Rates) {
		if k.DestWorkload == name && k.DestNamespace == ns {
			inAgg.add(k, c)
		}
		if k.SourceWorkload == name && k.SourceNamespace == ns {
			outAgg.add(k, c)
		}
	}
	d.Inbound, d.Outbound = inAgg.stats(), outAgg.stats()
	d.Health = worse(d.Inbound.Health, d.Outbound.Health)
	d.Callers, d.Callees = neighbours(in.graph, d.ID)
	var mine []xdsserver.ProxyStatus
	for _, p := range in.proxies {
		if p.Name == name && p.Namespace == ns {
			mine = append(mine, p)
			if d.Labels == nil {
				d.Labels = p.Labels
			}
		}
	}
	d.Proxies = inspect.StatusRows(mine, in.istiod)
	d.Config = workloadConfig(in.push, ns, d.Labels)
	return d
}

// neighbours are the nodes with an edge into id and out of it.
func neighbours(g Graph, id string) (callers, callees []Neighbour) {
	byID := make(map[string]Node, len(g.Nodes))
	for _, n := range g.Nodes {
		byID[n.ID] = n
	}
	callers, callees = []Neighbour{}, []Neighbour{}
	for _, e := range g.Edges {
		if e.Target == id {
			callers = append(callers, Neighbour{Node: byID[e.Source], Edge: e.Stats})
		}
		if e.Source == id {
			callees = append(callees, Neighbour{Node: byID[e.Target], Edge: e.Stats})
		}
	}
	return callers, callees
}
