package config

import (
	"errors"
	"fmt"

	networking "istio.io/api/networking/v1alpha3"
)

// Unsupported reports the fields of r that Istio accepts but sluice does
// not implement yet. They are errors, like validation errors: the file
// keeps its last good version and the message says what to remove, so
// nothing a user writes is silently ignored (docs/config.md lists them).
func Unsupported(r *Resource) Errors {
	var errs Errors
	add := func(field, what string) {
		errs = append(errs, &Error{Source: r.Source, Key: r.Key(), Field: field,
			Err: errors.New(what + " is not implemented by sluice yet; remove it to apply this resource")})
	}
	switch spec := r.Spec.(type) {
	case *networking.Sidecar:
		// Egress listeners (hosts scoped per port, bound to an IP of their
		// own with bind), ingress listeners (port, protocol, bind,
		// defaultEndpoint) and outboundTrafficPolicy are implemented.
		// captureMode NONE and DEFAULT both mean what local mode does
		// anyway (no interception: every listener is bound, as Istio's
		// proxyNoneMode ignores captureMode); IPTABLES cannot be.
		for i, in := range spec.Ingress {
			p := fmt.Sprintf("spec.ingress[%d]", i)
			if in.GetTls() != nil {
				add(p+".tls", "TLS on a Sidecar ingress listener")
			}
			if in.GetConnectionPool() != nil {
				add(p+".connectionPool", "a Sidecar ingress listener connectionPool")
			}
			if in.GetCaptureMode() == networking.CaptureMode_IPTABLES {
				add(p+".captureMode", "captureMode IPTABLES (local mode has no traffic capture)")
			}
		}
		for i, e := range spec.Egress {
			p := fmt.Sprintf("spec.egress[%d]", i)
			switch {
			case e.Bind == "":
			case e.Port == nil:
				add(p+".bind", "a bind address on the catch-all egress listener (one listener per service port)")
			case e.Port.Number == 0:
				add(p+".bind", "a unix domain socket egress listener")
			}
			if e.CaptureMode == networking.CaptureMode_IPTABLES {
				add(p+".captureMode", "captureMode IPTABLES (local mode has no traffic capture)")
			}
		}
		if spec.InboundConnectionPool != nil {
			add("spec.inboundConnectionPool", "inboundConnectionPool")
		}
		if spec.GetOutboundTrafficPolicy().GetEgressProxy() != nil {
			add("spec.outboundTrafficPolicy.egressProxy", "egressProxy")
		}
	case *networking.DestinationRule:
		unsupportedPolicy("spec.trafficPolicy", spec.TrafficPolicy, add)
		for i, s := range spec.Subsets {
			unsupportedPolicy(fmt.Sprintf("spec.subsets[%d].trafficPolicy", i), s.TrafficPolicy, add)
		}
	case *networking.Gateway:
		for i, s := range spec.Servers {
			if s.GetTls().GetMode() == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
				add(fmt.Sprintf("spec.servers[%d].tls.mode", i), "AUTO_PASSTHROUGH (multi-network SNI routing)")
			}
		}
	}
	return errs
}

func unsupportedPolicy(path string, p *networking.TrafficPolicy, add func(field, what string)) {
	if p == nil {
		return
	}
	check := func(path string, lb *networking.LoadBalancerSettings, cp *networking.ConnectionPoolSettings) {
		if lb.GetWarmupDurationSecs() != nil {
			add(path+".loadBalancer.warmupDurationSecs", "slow start (warmupDurationSecs)")
		}
		if lb.GetWarmup() != nil {
			add(path+".loadBalancer.warmup", "slow start (warmup)")
		}
		if cp.GetHttp().GetMaxConcurrentStreams() != 0 {
			add(path+".connectionPool.http.maxConcurrentStreams", "maxConcurrentStreams")
		}
	}
	check(path, p.LoadBalancer, p.ConnectionPool)
	if p.Tunnel != nil {
		add(path+".tunnel", "tunneling (tunnel)")
	}
	if p.ProxyProtocol != nil {
		add(path+".proxyProtocol", "PROXY protocol (proxyProtocol)")
	}
	if p.RetryBudget != nil {
		add(path+".retryBudget", "retryBudget")
	}
	for i, pl := range p.PortLevelSettings {
		check(fmt.Sprintf("%s.portLevelSettings[%d]", path, i), pl.LoadBalancer, pl.ConnectionPool)
	}
}
