package analysis

// sluice's own message types: mistakes Istio accepts silently (issue 13,
// point 2). Their codes are in sluice's range SLU0001.., never an IST
// code; docs/cli.md lists them.
var (
	// ShadowedRoute is SLU0001: an HTTP route no request can reach.
	ShadowedRoute = &MessageType{Name: "ShadowedRoute", Code: "SLU0001", Level: LevelWarning,
		Description: "An HTTP route can never match because an earlier route of the same VirtualService matches every request it matches.",
		Template:    "HTTP route %s can never match: route %s before it matches every request it would. Move it above that route, or narrow the earlier route's match.",
		Args:        []string{"route", "earlierRoute"}}
	// DuplicateGatewayVirtualServiceHost is SLU0002: several
	// VirtualServices bind one host to one gateway.
	DuplicateGatewayVirtualServiceHost = &MessageType{Name: "DuplicateGatewayVirtualServiceHost", Code: "SLU0002", Level: LevelWarning,
		Description: "Several VirtualServices define one host on one gateway; Istio merges their routes in an order that is undefined when they overlap.",
		Template:    "The VirtualServices %s define the same host %s on gateway %s: their routes are merged in an undefined order. Merge them into one VirtualService, or give each its own host.",
		Args:        []string{"virtualServices", "host", "gateway"}}
	// RouteWeightsNot100 is SLU0003: weights Istio rescales silently.
	RouteWeightsNot100 = &MessageType{Name: "RouteWeightsNot100", Code: "SLU0003", Level: LevelWarning,
		Description: "The weights of a route's destinations do not add up to 100; Istio scales them silently.",
		Template:    "The destination weights of %s route %s add up to %d, not 100: Istio scales them, so the traffic split is not the one written. Set weights that add up to 100.",
		Args:        []string{"protocol", "route", "sum"}}
	// SubsetSelectsNoEndpoint is SLU0004: a subset with no endpoint now.
	SubsetSelectsNoEndpoint = &MessageType{Name: "SubsetSelectsNoEndpoint", Code: "SLU0004", Level: LevelWarning,
		Description: "A DestinationRule subset selects none of its host's current endpoints (WorkloadEntries, ServiceEntry endpoints, pods).",
		Template:    "Subset %s (labels %s) selects none of the %d endpoint(s) of %s: requests routed to it fail with 503 (no healthy upstream). Label a workload %s, or fix the subset's labels.",
		Args:        []string{"subset", "labels", "endpoints", "host", "labels2"}}
	// PolicyNotForProtocol is SLU0005: a traffic policy field that
	// cannot act on the port's protocol.
	PolicyNotForProtocol = &MessageType{Name: "PolicyNotForProtocol", Code: "SLU0005", Level: LevelWarning,
		Description: "A DestinationRule traffic policy sets an HTTP-only field for a port that carries no HTTP; it has no effect.",
		Template:    "%s applies to HTTP only, but %s of %s is %s: it has no effect there. Remove it, or declare the port's protocol HTTP (port name http-*, appProtocol http).",
		Args:        []string{"field", "ports", "host", "protocol"}}
	// RetriesExceedTimeout is SLU0006: retries the route timeout cuts.
	RetriesExceedTimeout = &MessageType{Name: "RetriesExceedTimeout", Code: "SLU0006", Level: LevelWarning,
		Description: "A route's first try and retries, each allowed perTryTimeout, cannot fit in the route's timeout.",
		Template:    "HTTP route %s: the first try and %d retries, each allowed perTryTimeout %s, need up to %s, more than the route timeout %s: the later retries never get their time. Lower retries.attempts or perTryTimeout, or raise timeout.",
		Args:        []string{"route", "attempts", "perTryTimeout", "total", "timeout"}}
	// SidecarEgressHostNotFound is SLU0007: an egress host that names
	// no service.
	SidecarEgressHostNotFound = &MessageType{Name: "SidecarEgressHostNotFound", Code: "SLU0007", Level: LevelWarning,
		Description: "A Sidecar egress host matches no service visible from the Sidecar's namespace.",
		Template:    "Egress host %q matches no service visible to namespace %s, so the workloads lose access to it. %s",
		Args:        []string{"host", "namespace", "hint"}}
	// StrictMTLSCallerWithoutSidecar is SLU0008: a STRICT workload
	// called by a workload without a sidecar.
	StrictMTLSCallerWithoutSidecar = &MessageType{Name: "StrictMTLSCallerWithoutSidecar", Code: "SLU0008", Level: LevelError,
		Description: "A PeerAuthentication requires mTLS (STRICT) on a workload that a workload without a sidecar routes to.",
		Template:    "STRICT mTLS is required on %s, but %s routes to it (VirtualService %s) and has no sidecar (sidecar.istio.io/inject: \"false\"): its plaintext requests are refused. Give the caller a sidecar, or set mode PERMISSIVE for that workload or port.",
		Args:        []string{"workload", "caller", "virtualService"}}
)

// sluiceMessageTypes lists sluice's own message types, in code order.
var sluiceMessageTypes = []*MessageType{
	ShadowedRoute, DuplicateGatewayVirtualServiceHost, RouteWeightsNot100, SubsetSelectsNoEndpoint,
	PolicyNotForProtocol, RetriesExceedTimeout, SidecarEgressHostNotFound, StrictMTLSCallerWithoutSidecar,
}

// SluiceMessageTypes returns sluice's own message types (SLU codes).
func SluiceMessageTypes() []*MessageType { return sluiceMessageTypes }
