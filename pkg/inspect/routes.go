package inspect

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// WriteRoutes prints istioctl's route table (istio/istio
// istioctl/pkg/writer/envoy/configdump/route.go PrintRouteSummary,
// verbose): NAME VHOST NAME DOMAINS MATCH VIRTUAL SERVICE, one row per
// route (routes to the PassthroughCluster left out; a virtual host
// without routes is "/*  404").
func WriteRoutes(w io.Writer, routes []*route.RouteConfiguration) error {
	rs := append([]*route.RouteConfiguration(nil), routes...)
	// istioctl orders numeric names (ports) by number, others as they come.
	sort.SliceStable(rs, func(i, j int) bool {
		a, errA := strconv.Atoi(rs[i].GetName())
		b, errB := strconv.Atoi(rs[j].GetName())
		switch {
		case errA == nil && errB == nil:
			return a < b
		case errA == nil || errB == nil:
			return errA == nil
		}
		return rs[i].GetName() < rs[j].GetName()
	})
	tw := new(tabwriter.Writer).Init(w, 0, 8, 5, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVHOST NAME\tDOMAINS\tMATCH\tVIRTUAL SERVICE")
	for _, rc := range rs {
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if r.GetRoute().GetCluster() == "PassthroughCluster" {
					continue
				}
				fmt.Fprintf(tw, "%v\t%s\t%s\t%s\t%s\n", rc.GetName(), vh.GetName(), describeRouteDomains(vh.GetDomains()),
					describeMatch(r.GetMatch()), describeManagement(r.GetMetadata()))
			}
			if len(vh.GetRoutes()) == 0 {
				fmt.Fprintf(tw, "%v\t%s\t%s\t%s\t%s\n", rc.GetName(), vh.GetName(), describeRouteDomains(vh.GetDomains()), "/*", "404")
			}
		}
	}
	return tw.Flush()
}

// describeRouteDomains shows at most two domains without ports, as
// istioctl does.
func describeRouteDomains(domains []string) string {
	if len(domains) <= 1 {
		return strings.Join(domains, "")
	}
	var withoutPort []string
	for _, d := range domains {
		if !strings.Contains(d, ":") || (strings.Count(d, ":") > 2 && strings.HasSuffix(d, "]")) {
			withoutPort = append(withoutPort, d)
		}
	}
	withoutPort = unexpandDomains(withoutPort)
	if len(withoutPort) > 2 {
		return fmt.Sprintf("%s + %d more...", strings.Join(withoutPort[:2], ", "), len(withoutPort)-2)
	}
	return strings.Join(withoutPort, ", ")
}

// unexpandDomains drops h.svc.cluster.local and h.svc when h is listed.
func unexpandDomains(domains []string) []string {
	unique := map[string]bool{}
	for _, d := range domains {
		unique[d] = true
	}
	var out []string
	for _, h := range domains {
		full, partial := strings.TrimSuffix(h, ".svc.cluster.local"), strings.TrimSuffix(h, ".svc")
		if (full != h && unique[full]) || (partial != h && unique[partial]) {
			continue
		}
		out = append(out, h)
	}
	return out
}

// describeManagement names the Istio config a resource came from, from
// its istio metadata ("/apis/networking.istio.io/v1/namespaces/ns/virtual-service/name"
// gives name.ns), as istioctl; empty when the generator did not say.
func describeManagement(md *core.Metadata) string {
	cfg := md.GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue()
	if cfg == "" {
		return ""
	}
	if !strings.HasPrefix(cfg, "/apis/networking.istio.io/") {
		return "<unknown>"
	}
	pieces := strings.Split(cfg, "/")
	if len(pieces) != 8 {
		return ""
	}
	return pieces[7] + "." + pieces[5]
}

// WriteClusters prints istioctl's cluster table (istio/istio
// istioctl/pkg/writer/envoy/configdump/cluster.go PrintClusterSummary):
// SERVICE FQDN PORT SUBSET DIRECTION TYPE DESTINATION RULE.
func WriteClusters(w io.Writer, clusters []*cluster.Cluster) error {
	cs := append([]*cluster.Cluster(nil), clusters...)
	sort.SliceStable(cs, func(i, j int) bool {
		di, si, ni, pi := parseSubsetKey(cs[i].GetName())
		dj, sj, nj, pj := parseSubsetKey(cs[j].GetName())
		switch {
		case ni != nj:
			return ni < nj
		case si != sj:
			return si < sj
		case pi != pj:
			return pi < pj
		}
		return di < dj
	})
	tw := new(tabwriter.Writer).Init(w, 0, 8, 5, ' ', 0)
	fmt.Fprintln(tw, "SERVICE FQDN\tPORT\tSUBSET\tDIRECTION\tTYPE\tDESTINATION RULE")
	for _, c := range cs {
		if len(strings.Split(c.GetName(), "|")) > 3 {
			direction, subset, fqdn, port := parseSubsetKey(c.GetName())
			if subset == "" {
				subset = "-"
			}
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%s\t%s\n", fqdn, port, subset, direction, c.GetType(), describeManagement(c.GetMetadata()))
			continue
		}
		fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%s\t%s\n", c.GetName(), "-", "-", "-", c.GetType(), describeManagement(c.GetMetadata()))
	}
	return tw.Flush()
}
