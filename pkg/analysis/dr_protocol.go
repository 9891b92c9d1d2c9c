package analysis

import (
	"sort"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// sluice's own check (issue 13): HTTP-only policies on non-HTTP ports.
func init() {
	register(&Analyzer{
		Name:        "sluice.PolicyProtocolAnalyzer",
		Description: "Checks for DestinationRule traffic policy fields that only act on HTTP, set for ports that carry TCP or TLS.",
		Codes:       []string{"SLU0005"},
		run:         analyzePolicyProtocols,
	})
}

// httpOnlyFields lists the traffic policy fields set in p that act on
// HTTP requests only, by their path under the policy:
//   - consistentHash on a header, cookie or query parameter: for a TCP
//     port Istio sets the TCP proxy's hash policy only for useSourceIp
//     (istio/istio pilot/pkg/networking/core/networkfilter.go
//     maybeSetHashPolicy), so the ring hashes nothing;
//   - connectionPool.http settings of the HTTP connection manager and
//     codec (h2UpgradePolicy, useClientProtocol, idleTimeout,
//     maxRequestsPerConnection, maxConcurrentStreams).
//
// Outlier detection is not listed: on an opaque TCP connection, connect
// failures count as 5xx and gateway errors (destination_rule.proto
// OutlierDetection), so it does apply. Nor are the HTTP circuit breaker
// thresholds, which Envoy's TCP connection pool also reads.
func httpOnlyFields(p *networking.TrafficPolicy) []string {
	var out []string
	ch := p.GetLoadBalancer().GetConsistentHash()
	switch {
	case ch.GetHttpHeaderName() != "":
		out = append(out, "loadBalancer.consistentHash.httpHeaderName")
	case ch.GetHttpCookie() != nil:
		out = append(out, "loadBalancer.consistentHash.httpCookie")
	case ch.GetHttpQueryParameterName() != "":
		out = append(out, "loadBalancer.consistentHash.httpQueryParameterName")
	}
	h := p.GetConnectionPool().GetHttp()
	if h.GetH2UpgradePolicy() != networking.ConnectionPoolSettings_HTTPSettings_DEFAULT {
		out = append(out, "connectionPool.http.h2UpgradePolicy")
	}
	if h.GetUseClientProtocol() {
		out = append(out, "connectionPool.http.useClientProtocol")
	}
	if h.GetIdleTimeout() != nil {
		out = append(out, "connectionPool.http.idleTimeout")
	}
	if h.GetMaxRequestsPerConnection() != 0 {
		out = append(out, "connectionPool.http.maxRequestsPerConnection")
	}
	if h.GetMaxConcurrentStreams() != 0 {
		out = append(out, "connectionPool.http.maxConcurrentStreams")
	}
	return out
}

// nonHTTP reports whether a port's protocol is known to carry no HTTP
// the sidecar sees: TCP (and the TCP-like mongo, redis, mysql) or TLS.
// Unknown protocols are sniffed and may be HTTP.
func nonHTTP(p registry.Protocol) bool {
	return p == registry.ProtocolTCP || p == registry.ProtocolTLS
}

// analyzePolicyProtocols reports each HTTP-only field of a DestinationRule
// policy (top level, per port, per subset) whose ports all carry TCP or
// TLS.
func analyzePolicyProtocols(c *Context) {
	for _, o := range c.Objects(config.KindDestinationRule) {
		dr := o.Spec.(*networking.DestinationRule)
		services := registryServices(c, o.Namespace, dr.GetHost())
		if len(services) == 0 {
			continue
		}
		check := func(prefix string, p *networking.TrafficPolicy) {
			checkPolicyProtocols(c, o, services, prefix, p)
		}
		check("trafficPolicy", dr.GetTrafficPolicy())
		for i, ss := range dr.GetSubsets() {
			check(sprintf("subsets[%d].trafficPolicy", i), ss.GetTrafficPolicy())
		}
	}
}

func checkPolicyProtocols(c *Context, o *Object, services []*registry.Service, prefix string, p *networking.TrafficPolicy) {
	if p == nil {
		return
	}
	host := services[0].Hostname
	if fields := httpOnlyFields(p); len(fields) > 0 {
		ports, proto := portsProtocol(services, 0)
		if ports != "" {
			for _, f := range fields {
				c.report(PolicyNotForProtocol, o, "", prefix+"."+f, ports, host, proto)
			}
		}
	}
	for i, pl := range p.GetPortLevelSettings() {
		n := pl.GetPort().GetNumber()
		fields := httpOnlyFields(&networking.TrafficPolicy{LoadBalancer: pl.GetLoadBalancer(), ConnectionPool: pl.GetConnectionPool()})
		if n == 0 || len(fields) == 0 {
			continue
		}
		ports, proto := portsProtocol(services, n)
		if ports == "" {
			continue
		}
		for _, f := range fields {
			c.report(PolicyNotForProtocol, o, "", sprintf("%s.portLevelSettings[%d].%s", prefix, i, f), ports, host, proto)
		}
	}
}

// portsProtocol describes the services' ports (only number n when n is
// not 0) when every one is non-HTTP: "port 5432", "ports 5432,6379", and
// their protocols ("TCP", "TCP/TLS"). It returns "" when any is HTTP or
// unknown, or there is none.
func portsProtocol(services []*registry.Service, n uint32) (string, string) {
	var numbers []int
	protos := map[string]bool{}
	for _, svc := range services {
		for _, p := range svc.Ports {
			if n != 0 && p.Number != n {
				continue
			}
			if !nonHTTP(p.Protocol) {
				return "", ""
			}
			numbers = append(numbers, int(p.Number))
			protos[string(p.Protocol)] = true
		}
	}
	if len(numbers) == 0 {
		return "", ""
	}
	sort.Ints(numbers)
	var nums, names []string
	for i, x := range numbers {
		if i == 0 || x != numbers[i-1] { // several namespaces may declare the host
			nums = append(nums, strconv.Itoa(x))
		}
	}
	for p := range protos {
		names = append(names, p)
	}
	sort.Strings(names)
	word := "port "
	if len(nums) > 1 {
		word = "ports "
	}
	return word + strings.Join(nums, ","), strings.Join(names, "/")
}
