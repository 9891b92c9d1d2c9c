package config

import (
	"fmt"

	networking "istio.io/api/networking/v1alpha3"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// supported rows, one per field, with a shared note.
func supported(kind, note string, fields ...string) []Feature {
	out := make([]Feature, 0, len(fields))
	for _, f := range fields {
		out = append(out, Feature{Kind: kind, Field: f, Support: Supported, Reason: note})
	}
	return out
}

// unclaimed marks supported rows the conformance runner does not claim.
func unclaimed(why string, rows []Feature) []Feature {
	for i := range rows {
		rows[i].Unclaimed = why
	}
	return rows
}

func rows(groups ...[]Feature) []Feature {
	var out []Feature
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

const (
	notConformance = "not yet exercised by the conformance runner's cases"
	clientCertOnly = "checks client certificates: it has an effect with tls.mode MUTUAL or OPTIONAL_MUTUAL only " +
		"(with SIMPLE or PASSTHROUGH Istio ignores it; with ISTIO_MUTUAL sluice implements subjectAltNames only)"
)

var (
	mutualModes = func(t *networking.ServerTLSSettings) bool {
		return t.Mode == networking.ServerTLSSettings_MUTUAL || t.Mode == networking.ServerTLSSettings_OPTIONAL_MUTUAL
	}
	notClientVerifying = func(t *networking.ServerTLSSettings) bool {
		return !mutualModes(t) && t.Mode != networking.ServerTLSSettings_ISTIO_MUTUAL
	}
	istioMutual = func(t *networking.ServerTLSSettings) bool { return t.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL }
	always      = func(*networking.ServerTLSSettings) bool { return true }
	notHere     = func(t *networking.ServerTLSSettings) bool { return notClientVerifying(t) || istioMutual(t) }
)

// supportTable is the support table (SupportTable adds the NotEnforced
// kinds of notenforced.go). Rows name fields Istio's API has; a field of a
// kind sluice reads that has no row is covered by the kind's validation
// and generation (docs/config.md per kind).
var supportTable = rows(
	supported("VirtualService", "", "spec.hosts", "spec.gateways", "spec.http", "spec.tcp", "spec.tls", "spec.exportTo"),
	supported("VirtualService", "", "spec.http[].name", "spec.http[].match", "spec.http[].route", "spec.http[].redirect",
		"spec.http[].directResponse", "spec.http[].rewrite", "spec.http[].headers", "spec.http[].delegate", "spec.http[].timeout",
		"spec.http[].retries", "spec.http[].fault", "spec.http[].mirror", "spec.http[].mirrorPercentage", "spec.http[].mirrorPercent",
		"spec.http[].mirrors"),
	unclaimed(notConformance, supported("VirtualService", "", "spec.http[].corsPolicy")),
	supported("VirtualService", "", "spec.http[].match[].name", "spec.http[].match[].uri", "spec.http[].match[].scheme",
		"spec.http[].match[].method", "spec.http[].match[].authority", "spec.http[].match[].headers", "spec.http[].match[].port",
		"spec.http[].match[].sourceLabels", "spec.http[].match[].queryParams", "spec.http[].match[].ignoreUriCase",
		"spec.http[].match[].withoutHeaders"),
	unclaimed(notConformance, supported("VirtualService", "", "spec.http[].match[].gateways", "spec.http[].match[].sourceNamespace")),
	supported("VirtualService", "", "spec.http[].route[].destination", "spec.http[].route[].weight", "spec.http[].route[].headers"),
	supported("VirtualService", "", "spec.tcp[].match", "spec.tcp[].route"),
	supported("VirtualService", "", "spec.tcp[].match[].port", "spec.tcp[].match[].sourceLabels", "spec.tcp[].match[].gateways",
		"spec.tcp[].match[].destinationSubnets", "spec.tcp[].match[].sourceNamespace"),
	supported("VirtualService", "", "spec.tcp[].route[].destination", "spec.tcp[].route[].weight"),

	supported("DestinationRule", "", "spec.host", "spec.subsets", "spec.exportTo", "spec.trafficPolicy",
		"spec.subsets[].name", "spec.subsets[].labels", "spec.subsets[].trafficPolicy"),
	unclaimed(notConformance, supported("DestinationRule", "", "spec.workloadSelector")),
	supported("DestinationRule", "", "spec.trafficPolicy.connectionPool", "spec.trafficPolicy.outlierDetection", "spec.trafficPolicy.loadBalancer"),
	unclaimed(notConformance, supported("DestinationRule", "", "spec.trafficPolicy.tls", "spec.trafficPolicy.portLevelSettings")),
	supported("DestinationRule", "", "spec.trafficPolicy.connectionPool.tcp", "spec.trafficPolicy.connectionPool.http"),
	supported("DestinationRule", "", "spec.trafficPolicy.connectionPool.tcp.maxConnections", "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
		"spec.trafficPolicy.connectionPool.tcp.tcpKeepalive", "spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration",
		"spec.trafficPolicy.connectionPool.tcp.idleTimeout"),
	supported("DestinationRule", "", "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests",
		"spec.trafficPolicy.connectionPool.http.http2MaxRequests", "spec.trafficPolicy.connectionPool.http.maxRetries",
		"spec.trafficPolicy.connectionPool.http.maxRequestsPerConnection", "spec.trafficPolicy.connectionPool.http.idleTimeout",
		"spec.trafficPolicy.connectionPool.http.h2UpgradePolicy", "spec.trafficPolicy.connectionPool.http.useClientProtocol"),
	supported("DestinationRule", "", "spec.trafficPolicy.outlierDetection.consecutive5xxErrors",
		"spec.trafficPolicy.outlierDetection.consecutiveGatewayErrors", "spec.trafficPolicy.outlierDetection.splitExternalLocalOriginErrors",
		"spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures", "spec.trafficPolicy.outlierDetection.interval",
		"spec.trafficPolicy.outlierDetection.baseEjectionTime", "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
		"spec.trafficPolicy.outlierDetection.minHealthPercent"),
	supported("DestinationRule", "deprecated: ignored as current Istio ignores it (Envoy's default of 5 consecutive 5xx applies), with a warning",
		"spec.trafficPolicy.outlierDetection.consecutiveErrors"),
	supported("DestinationRule", "", "spec.trafficPolicy.loadBalancer.simple", "spec.trafficPolicy.loadBalancer.consistentHash",
		"spec.trafficPolicy.loadBalancer.localityLbSetting"),
	supported("DestinationRule", "", "spec.trafficPolicy.loadBalancer.consistentHash.httpHeaderName",
		"spec.trafficPolicy.loadBalancer.consistentHash.httpCookie", "spec.trafficPolicy.loadBalancer.consistentHash.useSourceIp",
		"spec.trafficPolicy.loadBalancer.consistentHash.httpQueryParameterName", "spec.trafficPolicy.loadBalancer.consistentHash.ringHash",
		"spec.trafficPolicy.loadBalancer.consistentHash.maglev", "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize"),
	supported("DestinationRule", "", "spec.trafficPolicy.loadBalancer.localityLbSetting.enabled",
		"spec.trafficPolicy.loadBalancer.localityLbSetting.distribute", "spec.trafficPolicy.loadBalancer.localityLbSetting.failover",
		"spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority"),
	unclaimed(notConformance, supported("DestinationRule", "", "spec.trafficPolicy.tls.mode", "spec.trafficPolicy.tls.clientCertificate",
		"spec.trafficPolicy.tls.privateKey", "spec.trafficPolicy.tls.caCertificates", "spec.trafficPolicy.tls.credentialName",
		"spec.trafficPolicy.tls.subjectAltNames", "spec.trafficPolicy.tls.sni", "spec.trafficPolicy.tls.insecureSkipVerify")),
	unclaimed(notConformance, supported("DestinationRule", "a PEM CRL file (or the credentialName Secret's ca.crl); revoked server certificates are refused",
		"spec.trafficPolicy.tls.caCrl")),
	[]Feature{
		{Kind: "DestinationRule", Field: "spec.trafficPolicy.loadBalancer.warmupDurationSecs", Support: Rejected, Reason: "slow start (warmupDurationSecs) is not implemented by sluice yet",
			find: policyField("loadBalancer.warmupDurationSecs", func(p *networking.TrafficPolicy) bool { return p.GetLoadBalancer().GetWarmupDurationSecs() != nil },
				func(p *networking.TrafficPolicy_PortTrafficPolicy) bool {
					return p.GetLoadBalancer().GetWarmupDurationSecs() != nil
				})},
		{Kind: "DestinationRule", Field: "spec.trafficPolicy.loadBalancer.warmup", Support: Rejected, Reason: "slow start (warmup) is not implemented by sluice yet",
			find: policyField("loadBalancer.warmup", func(p *networking.TrafficPolicy) bool { return p.GetLoadBalancer().GetWarmup() != nil },
				func(p *networking.TrafficPolicy_PortTrafficPolicy) bool {
					return p.GetLoadBalancer().GetWarmup() != nil
				})},
		{Kind: "DestinationRule", Field: "spec.trafficPolicy.connectionPool.http.maxConcurrentStreams", Support: Rejected, Reason: "maxConcurrentStreams is not implemented by sluice yet",
			find: policyField("connectionPool.http.maxConcurrentStreams", func(p *networking.TrafficPolicy) bool {
				return p.GetConnectionPool().GetHttp().GetMaxConcurrentStreams() != 0
			},
				func(p *networking.TrafficPolicy_PortTrafficPolicy) bool {
					return p.GetConnectionPool().GetHttp().GetMaxConcurrentStreams() != 0
				})},
		{Kind: "DestinationRule", Field: "spec.trafficPolicy.tunnel", Support: Rejected, Reason: "tunneling (tunnel) is not implemented by sluice yet",
			find: policyField("tunnel", func(p *networking.TrafficPolicy) bool { return p.Tunnel != nil }, nil)},
		{Kind: "DestinationRule", Field: "spec.trafficPolicy.proxyProtocol", Support: Rejected, Reason: "PROXY protocol (proxyProtocol) is not implemented by sluice yet",
			find: policyField("proxyProtocol", func(p *networking.TrafficPolicy) bool { return p.ProxyProtocol != nil }, nil)},
		{Kind: "DestinationRule", Field: "spec.trafficPolicy.retryBudget", Support: Rejected, Reason: "retryBudget is not implemented by sluice yet",
			find: policyField("retryBudget", func(p *networking.TrafficPolicy) bool { return p.RetryBudget != nil }, nil)},
		{Kind: "DestinationRule", Field: "spec.trafficPolicy.tls.caCrl", Support: Rejected,
			Reason: "caCrl has no effect with mode ISTIO_MUTUAL or DISABLE, with insecureSkipVerify, or with credentialName (whose Secret's ca.crl is the CRL), as in Istio",
			find: clientTLS("caCrl", func(t *networking.ClientTLSSettings) bool {
				return t.CaCrl != "" && (t.Mode == networking.ClientTLSSettings_ISTIO_MUTUAL || t.Mode == networking.ClientTLSSettings_DISABLE ||
					t.GetInsecureSkipVerify().GetValue() || t.CredentialName != "")
			})},
	},

	unclaimed(notConformance, supported("ServiceEntry", "verify the servers of the entry's hosts when a DestinationRule's tls names no subjectAltNames (SIMPLE, MUTUAL, ISTIO_MUTUAL), as Istio", "spec.subjectAltNames")),

	unclaimed(notConformance, supported("Gateway", "", "spec.selector", "spec.servers[].port", "spec.servers[].hosts",
		"spec.servers[].name", "spec.servers[].tls.httpsRedirect", "spec.servers[].tls.mode", "spec.servers[].tls.serverCertificate",
		"spec.servers[].tls.privateKey", "spec.servers[].tls.caCertificates", "spec.servers[].tls.credentialName",
		"spec.servers[].tls.credentialNames", "spec.servers[].tls.caCertCredentialName", "spec.servers[].tls.tlsCertificates",
		"spec.servers[].tls.minProtocolVersion", "spec.servers[].tls.maxProtocolVersion", "spec.servers[].tls.cipherSuites")),
	unclaimed(notConformance, supported("Gateway", "MUTUAL and OPTIONAL_MUTUAL: client certificates are checked against them (OPTIONAL_MUTUAL: when presented)",
		"spec.servers[].tls.subjectAltNames", "spec.servers[].tls.verifyCertificateSpki", "spec.servers[].tls.verifyCertificateHash",
		"spec.servers[].tls.caCrl", "spec.servers[].tls.insecureSkipVerify")),
	[]Feature{
		{Kind: "Gateway", Field: "spec.servers[].tls.mode", Support: Rejected, Reason: "AUTO_PASSTHROUGH (multi-network SNI routing) is not implemented by sluice yet",
			find: serverTLS("mode", func(t *networking.ServerTLSSettings) bool {
				return t.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH
			}, always)},
	},
	serverTLSRejections(),
	[]Feature{
		{Kind: "Gateway", Field: "spec.servers[].bind", Support: Rejected,
			Reason: "a server bind address is not implemented by sluice: router proxies listen on their --bind-address",
			find: func(r *Resource) []string {
				return suffixed(gatewayServers(r, func(_ string, s *networking.Server) bool { return s.Bind != "" }), ".bind")
			}},
		{Kind: "VirtualService", Field: "spec.http[].match[].statPrefix", Support: Rejected,
			Reason: "per-route stats (statPrefix) are not implemented by sluice yet",
			find: func(r *Resource) []string {
				vs, _ := r.Spec.(*networking.VirtualService)
				var out []string
				for i, h := range vs.GetHttp() {
					for j, m := range h.GetMatch() {
						if m.GetStatPrefix() != "" {
							out = append(out, fmt.Sprintf("spec.http[%d].match[%d].statPrefix", i, j))
						}
					}
				}
				return out
			}},
	},

	gatewayAPIRejections(),

	securityRows(),
	telemetryRows(),
	// Exercised by ../shared/conformance/istio-security (claimed).
	rows(
		supported("PeerAuthentication", "", "spec.selector", "spec.mtls"),
		supported("PeerAuthentication", "mesh (root namespace, no selector), namespace and workload (selector) level; "+
			"the most specific wins, UNSET inherits, the oldest wins a tie, as Istio (docs/security.md)", "spec.mtls.mode"),
		supported("PeerAuthentication", "keyed by the workload port: the sidecar's inbound port (a WorkloadEntry's port) "+
			"or the Service targetPort (container port) it stands in for; requires a selector", "spec.portLevelMtls"),
		supported("PeerAuthentication", "", "spec.portLevelMtls[].mode")),

	supported("Sidecar", "", "spec.workloadSelector", "spec.egress[].hosts", "spec.egress[].port", "spec.egress[].bind",
		"spec.egress[].captureMode", "spec.ingress[].port", "spec.ingress[].bind", "spec.ingress[].defaultEndpoint",
		"spec.ingress[].captureMode", "spec.outboundTrafficPolicy.mode"),
	[]Feature{
		// Egress listeners (hosts scoped per port, bound to an IP of their
		// own with bind), ingress listeners (port, protocol, bind,
		// defaultEndpoint) and outboundTrafficPolicy are implemented.
		// captureMode NONE and DEFAULT both mean what local mode does
		// anyway (no interception: every listener is bound, as Istio's
		// proxyNoneMode ignores captureMode); IPTABLES cannot be.
		{Kind: "Sidecar", Field: "spec.ingress[].tls", Support: Rejected, Reason: "TLS on a Sidecar ingress listener is not implemented by sluice yet",
			find: sidecarIngress("tls", func(in *networking.IstioIngressListener) bool { return in.GetTls() != nil })},
		{Kind: "Sidecar", Field: "spec.ingress[].connectionPool", Support: Rejected, Reason: "a Sidecar ingress listener connectionPool is not implemented by sluice yet",
			find: sidecarIngress("connectionPool", func(in *networking.IstioIngressListener) bool { return in.GetConnectionPool() != nil })},
		{Kind: "Sidecar", Field: "spec.ingress[].captureMode", Support: Rejected, Reason: "captureMode IPTABLES: local mode has no traffic capture",
			find: sidecarIngress("captureMode", func(in *networking.IstioIngressListener) bool {
				return in.GetCaptureMode() == networking.CaptureMode_IPTABLES
			})},
		{Kind: "Sidecar", Field: "spec.egress[].bind", Support: Rejected, Reason: "a bind address on the catch-all egress listener (one listener per service port) is not implemented by sluice",
			find: sidecarEgress("bind", func(e *networking.IstioEgressListener) bool { return e.Bind != "" && e.Port == nil })},
		{Kind: "Sidecar", Field: "spec.egress[].bind", Support: Rejected, Reason: "a unix domain socket egress listener is not implemented by sluice yet",
			find: sidecarEgress("bind", func(e *networking.IstioEgressListener) bool {
				return e.Bind != "" && e.Port != nil && e.Port.Number == 0
			})},
		{Kind: "Sidecar", Field: "spec.egress[].captureMode", Support: Rejected, Reason: "captureMode IPTABLES: local mode has no traffic capture",
			find: sidecarEgress("captureMode", func(e *networking.IstioEgressListener) bool { return e.CaptureMode == networking.CaptureMode_IPTABLES })},
		{Kind: "Sidecar", Field: "spec.inboundConnectionPool", Support: Rejected, Reason: "inboundConnectionPool is not implemented by sluice yet",
			find: func(r *Resource) []string {
				return pathIf(sidecarSpec(r).GetInboundConnectionPool() != nil, "spec.inboundConnectionPool")
			}},
		{Kind: "Sidecar", Field: "spec.outboundTrafficPolicy.egressProxy", Support: Rejected, Reason: "egressProxy is not implemented by sluice yet",
			find: func(r *Resource) []string {
				return pathIf(sidecarSpec(r).GetOutboundTrafficPolicy().GetEgressProxy() != nil, "spec.outboundTrafficPolicy.egressProxy")
			}},
	},
)

// serverTLSRejections: Gateway server tls fields set where Istio gives
// them no effect are rejected rather than ignored.
func serverTLSRejections() []Feature {
	var out []Feature
	for _, f := range []struct {
		field string
		set   func(t *networking.ServerTLSSettings) bool
		when  func(t *networking.ServerTLSSettings) bool
	}{
		// ISTIO_MUTUAL checks client SANs too; validation already
		// refuses caCertificates with it.
		{"subjectAltNames", func(t *networking.ServerTLSSettings) bool { return len(t.SubjectAltNames) > 0 }, notClientVerifying},
		{"caCertificates", func(t *networking.ServerTLSSettings) bool { return t.CaCertificates != "" }, notClientVerifying},
		{"verifyCertificateSpki", func(t *networking.ServerTLSSettings) bool { return len(t.VerifyCertificateSpki) > 0 }, notHere},
		{"verifyCertificateHash", func(t *networking.ServerTLSSettings) bool { return len(t.VerifyCertificateHash) > 0 }, notHere},
		{"caCrl", func(t *networking.ServerTLSSettings) bool { return t.CaCrl != "" }, notHere},
		{"caCertCredentialName", func(t *networking.ServerTLSSettings) bool { return t.CaCertCredentialName != "" }, notHere},
		{"insecureSkipVerify", func(t *networking.ServerTLSSettings) bool { return t.GetInsecureSkipVerify().GetValue() }, notHere},
	} {
		out = append(out, Feature{Kind: "Gateway", Field: "spec.servers[].tls." + f.field, Support: Rejected,
			Reason: "tls." + f.field + " " + clientCertOnly, find: serverTLS(f.field, f.set, f.when)})
	}
	out = append(out,
		Feature{Kind: "Gateway", Field: "spec.servers[].tls.caCrl", Support: Rejected,
			Reason: "tls.caCrl is a file; with credentialName(s) the CRL is the Secret's ca.crl key, as in Istio",
			find: serverTLS("caCrl", func(t *networking.ServerTLSSettings) bool { return t.CaCrl != "" },
				func(t *networking.ServerTLSSettings) bool {
					return mutualModes(t) && (t.CredentialName != "" || len(t.CredentialNames) > 0)
				})},
		Feature{Kind: "Gateway", Field: "spec.servers[].tls.caCrl", Support: Rejected,
			Reason: "tls.caCrl with insecureSkipVerify: untrusted chains are accepted, revoked ones too",
			find: serverTLS("caCrl", func(t *networking.ServerTLSSettings) bool { return t.CaCrl != "" },
				func(t *networking.ServerTLSSettings) bool {
					return mutualModes(t) && t.GetInsecureSkipVerify().GetValue()
				})},
	)
	return out
}

func sidecarEgress(field string, set func(e *networking.IstioEgressListener) bool) func(r *Resource) []string {
	return func(r *Resource) []string {
		var out []string
		for i, e := range sidecarSpec(r).GetEgress() {
			if set(e) {
				out = append(out, fmt.Sprintf("spec.egress[%d].%s", i, field))
			}
		}
		return out
	}
}

func sidecarIngress(field string, set func(in *networking.IstioIngressListener) bool) func(r *Resource) []string {
	return func(r *Resource) []string {
		var out []string
		for i, in := range sidecarSpec(r).GetIngress() {
			if set(in) {
				out = append(out, fmt.Sprintf("spec.ingress[%d].%s", i, field))
			}
		}
		return out
	}
}

func pathIf(ok bool, path string) []string {
	if ok {
		return []string{path}
	}
	return nil
}

// gatewayAPIRejections: Gateway API Gateway fields sluice does not act on.
func gatewayAPIRejections() []Feature {
	gw := func(r *Resource) *gwv1.GatewaySpec { g, _ := r.Spec.(*gwv1.GatewaySpec); return g }
	row := func(field, reason string, set func(g *gwv1.GatewaySpec) bool) Feature {
		return Feature{Kind: string(KindK8sGateway), Field: field, Support: Rejected, Reason: reason,
			find: func(r *Resource) []string { g := gw(r); return pathIf(g != nil && set(g), field) }}
	}
	return []Feature{
		row("spec.tls", "Gateway-level TLS (frontend client certificate validation, the backend client certificate) is not implemented by sluice yet",
			func(g *gwv1.GatewaySpec) bool { return g.TLS != nil }),
		// From a cluster, the gateway deployment controller reads it
		// (pkg/kube/gwdeploy; docs/kubernetes.md, Gateway deployment).
		{Kind: string(KindK8sGateway), Field: "spec.infrastructure", Support: Rejected,
			Reason: "infrastructure (labels, annotations and parametersRef of the deployment Istio generates) applies to Gateways read from Kubernetes, " +
				"which sluice deploys; from files it has no meaning for router proxies a user starts",
			find: func(r *Resource) []string {
				g := gw(r)
				return pathIf(g != nil && g.Infrastructure != nil && r.Source.File != KubernetesSource, "spec.infrastructure")
			}},
		row("spec.allowedListeners", "allowedListeners (ListenerSets) is not implemented by sluice yet",
			func(g *gwv1.GatewaySpec) bool { return g.AllowedListeners != nil }),
		row("spec.defaultScope", "defaultScope is not implemented by sluice yet",
			func(g *gwv1.GatewaySpec) bool { return g.DefaultScope != "" }),
	}
}

func suffixed(paths []string, suffix string) []string {
	for i := range paths {
		paths[i] += suffix
	}
	return paths
}
