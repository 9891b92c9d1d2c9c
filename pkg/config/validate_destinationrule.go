package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// destinationRule follows Istio's ValidateDestinationRule.
func (v *validator) destinationRule(dr *networking.DestinationRule) {
	if dr.Host == "" {
		v.errorf("spec.host", "required: name the service this rule applies to, such as \"reviews.default.svc.cluster.local\"")
	} else {
		v.check("spec.host", validateWildcardDomain(dr.Host))
	}
	v.trafficPolicy("spec.trafficPolicy", dr.TrafficPolicy)

	names := map[string]int{}
	for i, s := range dr.Subsets {
		p := idx("spec.subsets", i)
		if s == nil {
			v.errorf(p, "subset may not be null")
			continue
		}
		if first, dup := names[s.Name]; dup {
			v.errorf(p+".name", "duplicate subset name %q (also spec.subsets[%d])", s.Name, first)
		} else {
			names[s.Name] = i
		}
		v.check(p+".name", validateSubsetName(s.Name))
		v.labels(p+".labels", s.Labels)
		v.trafficPolicy(p+".trafficPolicy", s.TrafficPolicy)
	}
	v.exportTo("spec.exportTo", dr.ExportTo, false, dr.WorkloadSelector != nil)
	v.workloadSelector("spec.workloadSelector", dr.WorkloadSelector)
}

func (v *validator) trafficPolicy(p string, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	// Istio's list leaves out retryBudget, which it added later; a policy
	// with only a retry budget is not empty.
	if tp.OutlierDetection == nil && tp.ConnectionPool == nil && tp.LoadBalancer == nil && tp.Tls == nil &&
		tp.PortLevelSettings == nil && tp.Tunnel == nil && tp.ProxyProtocol == nil && tp.RetryBudget == nil {
		v.errorf(p, "a traffic policy must set at least one field; remove it if empty")
		return
	}
	if tp.Tunnel != nil && tp.ProxyProtocol != nil {
		v.errorf(p, "tunnel and proxyProtocol cannot be set together")
	}
	v.outlierDetection(p+".outlierDetection", tp.OutlierDetection)
	v.connectionPool(p+".connectionPool", tp.ConnectionPool)
	v.loadBalancer(p+".loadBalancer", tp.LoadBalancer, tp.OutlierDetection)
	v.clientTLS(p+".tls", tp.Tls)
	v.portTrafficPolicies(p+".portLevelSettings", tp.PortLevelSettings)
	v.tunnel(p+".tunnel", tp.Tunnel)
	if pp := tp.ProxyProtocol; pp != nil && pp.Version != networking.TrafficPolicy_ProxyProtocol_V1 &&
		pp.Version != networking.TrafficPolicy_ProxyProtocol_V2 {
		v.errorf(p+".proxyProtocol.version", "invalid proxy protocol version %d; use V1 or V2", pp.Version)
	}
	if rb := tp.RetryBudget; rb != nil {
		if pct := rb.Percent; pct != nil && (pct.GetValue() < 0 || pct.GetValue() > 100) {
			v.errorf(p+".retryBudget.percent", "must be in the range 0..100 (it is %v)", pct.GetValue())
		}
		v.checkDuration(p+".retryBudget.budgetInterval", rb.BudgetInterval)
	}
}

func (v *validator) tunnel(p string, t *networking.TrafficPolicy_TunnelSettings) {
	if t == nil {
		return
	}
	if t.Protocol != "" && t.Protocol != "CONNECT" && t.Protocol != "POST" {
		v.errorf(p+".protocol", "tunnel protocol %q is not supported; use \"CONNECT\" or \"POST\"", t.Protocol)
	}
	if validateFQDN(t.TargetHost) != nil && !isIPAddress(t.TargetHost) {
		v.errorf(p+".targetHost", "%q is neither a valid domain name nor an IP address", t.TargetHost)
	}
	v.check(p+".targetPort", validatePort(int(t.TargetPort)))
}

func (v *validator) outlierDetection(p string, o *networking.OutlierDetection) {
	if o == nil {
		return
	}
	v.checkDuration(p+".baseEjectionTime", o.BaseEjectionTime)
	v.checkDuration(p+".interval", o.Interval)
	if !o.SplitExternalLocalOriginErrors && o.ConsecutiveLocalOriginFailures.GetValue() > 0 {
		v.errorf(p+".consecutiveLocalOriginFailures", "only takes effect with splitExternalLocalOriginErrors: true")
	}
	v.check(p+".maxEjectionPercent", validatePercent(o.MaxEjectionPercent))
	v.check(p+".minHealthPercent", validatePercent(o.MinHealthPercent))
}

func (v *validator) connectionPool(p string, cp *networking.ConnectionPoolSettings) {
	if cp == nil {
		return
	}
	if cp.Http == nil && cp.Tcp == nil {
		v.errorf(p, "a connection pool must set tcp, http or both")
		return
	}
	if h := cp.Http; h != nil {
		hp := p + ".http"
		for _, f := range []struct {
			name string
			val  int32
		}{
			{"http1MaxPendingRequests", h.Http1MaxPendingRequests},
			{"http2MaxRequests", h.Http2MaxRequests},
			{"maxRequestsPerConnection", h.MaxRequestsPerConnection},
			{"maxRetries", h.MaxRetries},
			{"maxConcurrentStreams", h.MaxConcurrentStreams},
		} {
			if f.val < 0 {
				v.errorf(hp+"."+f.name, "cannot be negative (it is %d)", f.val)
			}
		}
		v.checkDuration(hp+".idleTimeout", h.IdleTimeout)
		if h.H2UpgradePolicy == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.UseClientProtocol {
			v.errorf(hp+".useClientProtocol", "cannot be true when h2UpgradePolicy is UPGRADE")
		}
	}
	if t := cp.Tcp; t != nil {
		tp := p + ".tcp"
		if t.MaxConnections < 0 {
			v.errorf(tp+".maxConnections", "cannot be negative (it is %d)", t.MaxConnections)
		}
		v.checkDuration(tp+".connectTimeout", t.ConnectTimeout)
		v.checkDuration(tp+".maxConnectionDuration", t.MaxConnectionDuration)
		// An idle timeout of 0s disables it.
		if t.IdleTimeout != nil && t.IdleTimeout.AsDuration().Milliseconds() != 0 {
			v.checkDuration(tp+".idleTimeout", t.IdleTimeout)
		}
		if ka := t.TcpKeepalive; ka != nil {
			v.checkDuration(tp+".tcpKeepalive.time", ka.Time)
			v.checkDuration(tp+".tcpKeepalive.interval", ka.Interval)
		}
	}
}

func (v *validator) loadBalancer(p string, lb *networking.LoadBalancerSettings, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		cp := p + ".consistentHash"
		switch key := ch.HashKey.(type) {
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
			if key.HttpCookie.GetName() == "" {
				v.errorf(cp+".httpCookie.name", "required")
			}
			if ttl := key.HttpCookie.GetTtl(); ttl != nil && ttl.AsDuration() < 0 {
				v.errorf(cp+".httpCookie.ttl", "cannot be negative")
			}
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
			if key.HttpHeaderName == "" {
				v.errorf(cp+".httpHeaderName", "must not be empty")
			}
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
			if key.HttpQueryParameterName == "" {
				v.errorf(cp+".httpQueryParameterName", "must not be empty")
			}
		}
		//nolint:staticcheck // the deprecated field is still accepted
		if ch.MinimumRingSize != 0 && ch.HashAlgorithm != nil {
			v.errorf(cp+".minimumRingSize", "cannot be combined with ringHash or maglev; set ringHash.minimumRingSize instead")
		}
		if ml := ch.GetMaglev(); ml != nil {
			switch {
			case ml.TableSize == 0:
				v.errorf(cp+".maglev.tableSize", "required for maglev; use a prime such as 65537")
			case ml.TableSize >= 5000011:
				v.errorf(cp+".maglev.tableSize", "must be less than 5000011")
			case !isPrime(ml.TableSize):
				v.errorf(cp+".maglev.tableSize", "%d is not a prime number, which maglev requires", ml.TableSize)
			}
		}
	}
	v.localityLB(p+".localityLbSetting", lb.LocalityLbSetting, outlier)
	if lb.WarmupDurationSecs != nil && lb.Warmup != nil {
		v.errorf(p+".warmup", "only one of warmupDurationSecs and warmup can be set")
	}
	v.checkDuration(p+".warmupDurationSecs", lb.WarmupDurationSecs)
	if w := lb.Warmup; w != nil {
		if w.Duration == nil {
			v.errorf(p+".warmup.duration", "required")
		} else {
			v.checkDuration(p+".warmup.duration", w.Duration)
		}
		if mp := w.MinimumPercent; mp != nil && (mp.GetValue() < 0 || mp.GetValue() > 100) {
			v.errorf(p+".warmup.minimumPercent", "must be in the range 0..100 (it is %v)", mp.GetValue())
		}
		if a := w.Aggression; a != nil && a.GetValue() < 1 {
			v.errorf(p+".warmup.aggression", "must be at least 1 (it is %v)", a.GetValue())
		}
	}
	if za := lb.ZoneAwareLbSetting; za != nil && za.MinClusterSize != nil && za.MinClusterSize.GetValue() < 1 {
		v.errorf(p+".zoneAwareLbSetting.minClusterSize", "must be at least 1")
	}
}

// isPrime matches Envoy's check of maglev table sizes.
func isPrime(x uint64) bool {
	if x != 0 && x < 4 {
		return true
	} else if x&1 == 0 {
		return false
	}
	limit := uint64(math.Sqrt(float64(x)))
	for f := uint64(3); f <= limit; f += 2 {
		if x%f == 0 {
			return false
		}
	}
	return true
}

// Topology labels that cannot appear in failoverPriority with failover.
var topologyLabels = map[string]bool{
	"topology.kubernetes.io/region": true,
	"topology.kubernetes.io/zone":   true,
	"topology.istio.io/subzone":     true,
}

// localityLB follows Istio's ValidateLocalityLbSetting.
func (v *validator) localityLB(p string, lb *networking.LocalityLoadBalancerSetting, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if len(lb.Distribute) > 0 && len(lb.Failover) > 0 {
		v.errorf(p, "distribute and failover cannot both be set")
		return
	}
	if len(lb.Failover) > 0 {
		for i, l := range lb.FailoverPriority {
			if topologyLabels[l] {
				v.errorf(idx(p+".failoverPriority", i), "topology label %q cannot be used together with failover", l)
				return
			}
		}
	}
	var from []string
	for i, d := range lb.Distribute {
		dp := idx(p+".distribute", i)
		from = append(from, d.GetFrom())
		var total uint64
		var to []string
		for _, loc := range slices.Sorted(maps.Keys(d.GetTo())) {
			w := d.To[loc]
			if w == 0 || w > 100 {
				v.errorf(mapKey(dp+".to", loc), "locality weight %d must be in the range 1..100", w)
				return
			}
			total += uint64(w)
			to = append(to, loc)
		}
		if total != 100 {
			v.errorf(dp+".to", "the weights of the localities add up to %d; they must add up to 100", total)
			return
		}
		if err := validateLocalities(to); err != nil {
			v.errorf(dp+".to", "%v", err)
		}
	}
	if err := validateLocalities(from); err != nil {
		v.errorf(p+".distribute", "%v", err)
	}
	for i, f := range lb.Failover {
		fp := idx(p+".failover", i)
		if f.GetFrom() == f.GetTo() {
			v.errorf(fp, "failover from and to must be different regions")
		}
		if strings.Contains(f.GetFrom(), "/") || strings.Contains(f.GetTo(), "/") {
			v.errorf(fp, "failover can only name regions, without zones")
		}
		if strings.Contains(f.GetFrom(), "*") || strings.Contains(f.GetTo(), "*") {
			v.errorf(fp, "failover regions cannot contain the wildcard '*'")
		}
	}
	_ = outlier // Istio only warns when failover has no outlier detection.
}

// validateLocalities checks "region/zone/subzone" patterns, each with at
// most one trailing '*', do not overlap.
func validateLocalities(localities []string) error {
	type zones map[string]map[string]bool
	seen := map[string]zones{}
	for _, loc := range localities {
		if n := strings.Count(loc, "*"); n > 1 || (n == 1 && !strings.HasSuffix(loc, "*")) {
			return fmt.Errorf("locality %q: a wildcard '*' may appear once, at the end", loc)
		}
		if _, all := seen["*"]; all {
			return fmt.Errorf("locality %q overlaps with ones before it", loc)
		}
		parts := strings.SplitN(loc, "/", 3)
		for _, part := range parts {
			if part == "" {
				return fmt.Errorf("locality %q must not have an empty region, zone or subzone", loc)
			}
		}
		region := parts[0]
		switch len(parts) {
		case 1:
			if _, ok := seen[region]; ok {
				return fmt.Errorf("locality %q overlaps with ones before it", loc)
			}
			seen[region] = zones{"*": {"*": true}}
		case 2:
			zone := parts[1]
			if z, ok := seen[region]; ok {
				if _, ok := z["*"]; ok {
					return fmt.Errorf("locality %q overlaps with ones before it", loc)
				}
				if _, ok := z[zone]; ok {
					return fmt.Errorf("locality %q overlaps with ones before it", loc)
				}
				z[zone] = map[string]bool{"*": true}
			} else {
				seen[region] = zones{zone: {"*": true}}
			}
		case 3:
			zone, sub := parts[1], parts[2]
			if z, ok := seen[region]; ok {
				if _, ok := z["*"]; ok {
					return fmt.Errorf("locality %q overlaps with ones before it", loc)
				}
				if s, ok := z[zone]; ok {
					if s["*"] || s[sub] {
						return fmt.Errorf("locality %q overlaps with ones before it", loc)
					}
					s[sub] = true
				} else {
					z[zone] = map[string]bool{sub: true}
				}
			} else {
				seen[region] = zones{zone: {sub: true}}
			}
		}
	}
	return nil
}

// clientTLS follows Istio's agent.ValidateTLS.
func (v *validator) clientTLS(p string, t *networking.ClientTLSSettings) {
	if t == nil {
		return
	}
	if t.GetInsecureSkipVerify().GetValue() {
		switch t.Mode {
		case networking.ClientTLSSettings_SIMPLE:
			if t.CaCertificates != "" || t.CredentialName != "" || t.SubjectAltNames != nil {
				v.errorf(p+".insecureSkipVerify", "cannot be combined with caCertificates, credentialName or subjectAltNames")
			}
		case networking.ClientTLSSettings_MUTUAL:
			if t.CaCertificates != "" || t.SubjectAltNames != nil {
				v.errorf(p+".insecureSkipVerify", "cannot be combined with caCertificates or subjectAltNames")
			}
		}
	}
	if (t.Mode == networking.ClientTLSSettings_SIMPLE || t.Mode == networking.ClientTLSSettings_MUTUAL) && t.CredentialName != "" {
		if t.ClientCertificate != "" || t.CaCertificates != "" || t.PrivateKey != "" || t.CaCrl != "" {
			v.errorf(p+".credentialName", "when credentialName is set, clientCertificate, privateKey, caCertificates and caCrl must not be")
		}
		return
	}
	if t.Mode == networking.ClientTLSSettings_MUTUAL {
		if t.ClientCertificate == "" {
			v.errorf(p+".clientCertificate", "required for MUTUAL TLS (or set credentialName)")
		}
		if t.PrivateKey == "" {
			v.errorf(p+".privateKey", "required for MUTUAL TLS (or set credentialName)")
		}
	}
}

func (v *validator) portTrafficPolicies(p string, pls []*networking.TrafficPolicy_PortTrafficPolicy) {
	ports := map[uint32]int{}
	for i, pl := range pls {
		pp := idx(p, i)
		if pl == nil {
			v.errorf(pp, "port traffic policy may not be null")
			continue
		}
		if pl.Port == nil {
			v.errorf(pp+".port", "required: set port.number")
		} else {
			n := pl.Port.GetNumber()
			v.check(pp+".port.number", validatePort(int(n)))
			if first, dup := ports[n]; dup {
				v.errorf(pp+".port.number", "duplicate port %d (also %s)", n, idx(p, first))
			} else {
				ports[n] = i
			}
		}
		if pl.OutlierDetection == nil && pl.ConnectionPool == nil && pl.LoadBalancer == nil && pl.Tls == nil {
			v.errorf(pp, "a port traffic policy must set at least one of loadBalancer, connectionPool, outlierDetection or tls")
			continue
		}
		v.outlierDetection(pp+".outlierDetection", pl.OutlierDetection)
		v.connectionPool(pp+".connectionPool", pl.ConnectionPool)
		v.loadBalancer(pp+".loadBalancer", pl.LoadBalancer, pl.OutlierDetection)
		v.clientTLS(pp+".tls", pl.Tls)
	}
}
