package config

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// meshGateway is the reserved gateway name meaning "all sidecars".
const meshGateway = "mesh"

// virtualService follows Istio's ValidateVirtualService.
func (v *validator) virtualService(vs *networking.VirtualService) {
	delegate := len(vs.Hosts) == 0
	if delegate {
		// A VirtualService without hosts can only be a delegate, which
		// carries HTTP routes only.
		if len(vs.Gateways) != 0 {
			v.errorf("spec.gateways", "a delegate VirtualService (one without hosts) must not set gateways; "+
				"add hosts, or set gateways on the root VirtualService that delegates here")
		}
		if len(vs.Tls) != 0 {
			v.errorf("spec.tls", "a delegate VirtualService (one without hosts) must not have tls routes; add hosts")
		}
		if len(vs.Tcp) != 0 {
			v.errorf("spec.tcp", "a delegate VirtualService (one without hosts) must not have tcp routes; add hosts")
		}
	}

	appliesToGateway := false
	if len(vs.Gateways) > 0 {
		v.gatewayNames("spec.gateways", vs.Gateways)
		appliesToGateway = !slices.Contains(vs.Gateways, meshGateway)
	}
	appliesToMesh := !appliesToGateway

	if !appliesToGateway {
		for i, route := range vs.Http {
			for j, m := range route.GetMatch() {
				p := fmt.Sprintf("spec.http[%d].match[%d]", i, j)
				for _, k := range slices.Sorted(maps.Keys(m.GetHeaders())) {
					if isJWTClaimHeader(k) {
						v.errorf(mapKey(p+".headers", k), "routing on JWT claims is only supported for gateways, and this VirtualService applies to sidecars (mesh)")
					}
				}
				for _, k := range slices.Sorted(maps.Keys(m.GetWithoutHeaders())) {
					if isJWTClaimHeader(k) {
						v.errorf(mapKey(p+".withoutHeaders", k), "routing on JWT claims is only supported for gateways, and this VirtualService applies to sidecars (mesh)")
					}
				}
			}
		}
	}

	sni := isSNIHost(vs)
	allHostsValid := true
	for i, h := range vs.Hosts {
		var err error
		if appliesToGateway {
			err = validateGatewayVirtualServiceHost(sni, h)
		} else {
			err = validateWildcardDomain(h)
		}
		switch {
		case err != nil && !isIPAddress(h):
			v.check(idx("spec.hosts", i), err)
			allHostsValid = false
		case err == nil && appliesToMesh && h == "*":
			v.errorf(idx("spec.hosts", i), "the wildcard host \"*\" is not allowed for VirtualServices that apply to sidecars (mesh); "+
				"use it only with gateways, or name the hosts")
			allHostsValid = false
		}
	}
	if allHostsValid {
		for i := 0; i < len(vs.Hosts); i++ {
			for j := i + 1; j < len(vs.Hosts); j++ {
				if hostsOverlap(vs.Hosts[i], vs.Hosts[j]) {
					v.errorf(idx("spec.hosts", j), "duplicate host: %q overlaps with %q (spec.hosts[%d])", vs.Hosts[j], vs.Hosts[i], i)
				}
			}
		}
	}

	if len(vs.Http) == 0 && len(vs.Tcp) == 0 && len(vs.Tls) == 0 {
		v.errorf("spec", "a VirtualService needs at least one http, tcp or tls route")
	}
	for i, route := range vs.Http {
		p := idx("spec.http", i)
		if route == nil {
			v.errorf(p, "http route may not be null")
			continue
		}
		v.httpRoute(p, route, delegate)
	}
	for i, route := range vs.Tls {
		v.tlsRoute(idx("spec.tls", i), route, vs)
	}
	for i, route := range vs.Tcp {
		v.tcpRoute(idx("spec.tcp", i), route)
	}
	v.exportTo("spec.exportTo", vs.ExportTo, false, false)
}

func isSNIHost(vs *networking.VirtualService) bool {
	for _, t := range vs.Tls {
		for _, m := range t.GetMatch() {
			if len(m.GetSniHosts()) > 0 {
				return true
			}
		}
	}
	return false
}

func isGatewayBound(vs *networking.VirtualService) bool {
	return !slices.Contains(vs.Gateways, meshGateway)
}

// hostsOverlap reports whether one host matches the other, either way,
// as Istio's host.Name.Matches does.
func hostsOverlap(a, b string) bool {
	aw := strings.HasPrefix(a, "*")
	bw := strings.HasPrefix(b, "*")
	switch {
	case aw && bw:
		if len(a) < len(b) {
			return strings.HasSuffix(b[1:], a[1:])
		}
		return strings.HasSuffix(a[1:], b[1:])
	case aw:
		return strings.HasSuffix(b, a[1:])
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// hostSubsetOf reports whether every name host matches is matched by
// of, as Istio's host.Name.SubsetOf does.
func hostSubsetOf(host, of string) bool {
	hw := strings.HasPrefix(host, "*")
	ow := strings.HasPrefix(of, "*")
	switch {
	case hw && ow:
		if len(host) < len(of) {
			return false
		}
		return strings.HasSuffix(host[1:], of[1:])
	case hw:
		return false
	case ow:
		return strings.HasSuffix(host, of[1:])
	}
	return host == of
}

// gatewayNames checks gateway references: "mesh", "name",
// "namespace/name" or the legacy "name.namespace...".
func (v *validator) gatewayNames(field string, names []string) {
	for i, name := range names {
		f := idx(field, i)
		ns, gw, ok := strings.Cut(name, "/")
		if !ok {
			v.check(f, validateFQDN(name))
			continue
		}
		if ns == "" || gw == "" {
			v.errorf(f, "invalid gateway %q: write <namespace>/<name> with neither part empty", name)
			continue
		}
		if !isDNS1123Label(ns) {
			v.errorf(f, "invalid namespace %q in gateway %q", ns, name)
		}
		if !isDNS1123Label(gw) {
			v.errorf(f, "invalid gateway name %q in %q: Gateway names are DNS labels", gw, name)
		}
	}
}

// httpRoute follows Istio's validateHTTPRoute.
func (v *validator) httpRoute(p string, route *networking.HTTPRoute, delegate bool) {
	v.httpRouteConflicts(p, route, delegate)
	v.httpMatches(p, route)
	v.headerOperations(p+".headers", route.Headers)
	v.corsPolicy(p+".corsPolicy", route.CorsPolicy)
	v.faultInjection(p+".fault", route.Fault)

	if mp := route.MirrorPercent; mp != nil && mp.GetValue() > 100 {
		v.errorf(p+".mirrorPercent", "must be at most 100 (it is %d)", mp.GetValue())
	}
	if mp := route.MirrorPercentage; mp != nil && (mp.GetValue() > 100 || mp.GetValue() < 0) {
		v.errorf(p+".mirrorPercentage", "must be in the range 0..100 (it is %v)", mp.GetValue())
	}
	v.destination(p+".mirror", route.Mirror)
	for i, m := range route.Mirrors {
		mp := idx(p+".mirrors", i)
		switch {
		case m == nil:
			v.errorf(mp, "mirror may not be null")
		case m.Destination == nil:
			v.errorf(mp+".destination", "required")
		default:
			v.destination(mp+".destination", m.Destination)
			if pct := m.Percentage; pct != nil && (pct.GetValue() > 100 || pct.GetValue() < 0) {
				v.errorf(mp+".percentage", "must be in the range 0..100 (it is %v)", pct.GetValue())
			}
		}
	}
	v.httpRedirect(p+".redirect", route.Redirect)
	v.directResponse(p+".directResponse", route.DirectResponse)
	v.httpRetry(p+".retries", route.Retries)
	v.httpRewrite(p+".rewrite", route.Rewrite)
	v.authorityRewrite(p, route)
	v.httpRouteDestinations(p+".route", route.Route)
	v.checkDuration(p+".timeout", route.Timeout)
	if d := route.Delegate; d != nil {
		if d.Name == "" {
			v.errorf(p+".delegate.name", "required: name the VirtualService to delegate to")
		} else if !isDNS1123Subdomain(d.Name) {
			v.errorf(p+".delegate.name", "%q is not a valid VirtualService name", d.Name)
		}
		if d.Namespace != "" && !isDNS1123Label(d.Namespace) {
			v.errorf(p+".delegate.namespace", "%q is not a valid namespace", d.Namespace)
		}
	}
}

// httpRouteConflicts checks that a route does exactly one thing: route,
// redirect, respond directly or delegate.
func (v *validator) httpRouteConflicts(p string, route *networking.HTTPRoute, delegate bool) {
	if !delegate && route.Delegate != nil {
		// A root route: only delegate may be set.
		if route.Redirect != nil {
			v.errorf(p+".redirect", "a route with delegate must not also redirect")
		}
		if len(route.Route) > 0 {
			v.errorf(p+".route", "a route with delegate must not also have destinations")
		}
		return
	}
	if delegate && route.Delegate != nil {
		v.errorf(p+".delegate", "a delegate VirtualService (one without hosts) cannot delegate again")
	}
	switch {
	case route.Redirect != nil:
		if len(route.Route) > 0 {
			v.errorf(p+".redirect", "a route cannot have both route destinations and a redirect")
		}
		if route.Fault != nil {
			v.errorf(p+".redirect", "a route cannot have both a fault and a redirect")
		}
		if route.Rewrite != nil {
			v.errorf(p+".redirect", "a route cannot have both a rewrite and a redirect")
		}
		if route.DirectResponse != nil {
			v.errorf(p+".redirect", "a route cannot have both a directResponse and a redirect")
		}
	case route.DirectResponse != nil:
		if len(route.Route) > 0 {
			v.errorf(p+".directResponse", "a route cannot have both route destinations and a directResponse")
		}
		if route.Fault != nil {
			v.errorf(p+".directResponse", "a route cannot have both a fault and a directResponse")
		}
		if route.Rewrite != nil {
			v.errorf(p+".directResponse", "a route cannot have both a rewrite and a directResponse")
		}
	case len(route.Route) == 0:
		v.errorf(p, "an http route needs one of route, redirect, directResponse or delegate")
	}
	if route.Mirror != nil && len(route.Mirrors) > 0 {
		v.errorf(p+".mirrors", "a route cannot have both mirror and mirrors; move mirror into mirrors")
	}
}

func (v *validator) httpMatches(p string, route *networking.HTTPRoute) {
	for i, m := range route.Match {
		mp := idx(p+".match", i)
		if m == nil {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(m.Headers)) {
			f := mapKey(mp+".headers", name)
			h := m.Headers[name]
			if h == nil {
				v.errorf(f, "header match cannot be null; use {} to match on presence")
			}
			if !isJWTClaimHeader(name) {
				v.check(f, validateHTTPHeaderName(name))
			}
			v.stringMatch(f, h, false)
		}
		for _, name := range slices.Sorted(maps.Keys(m.WithoutHeaders)) {
			f := mapKey(mp+".withoutHeaders", name)
			h := m.WithoutHeaders[name]
			if !isJWTClaimHeader(name) {
				v.check(f, validateHTTPHeaderName(name))
			}
			// A regex of "*" is not RE2: it means "present".
			if h.GetRegex() != "*" {
				v.stringMatch(f, h, false)
			}
		}
		// uri accepts an empty prefix; Envoy rejects one for the others.
		v.stringMatch(mp+".uri", m.Uri, true)
		v.stringMatch(mp+".scheme", m.Scheme, false)
		v.stringMatch(mp+".method", m.Method, false)
		v.stringMatch(mp+".authority", m.Authority, false)
		for _, name := range slices.Sorted(maps.Keys(m.QueryParams)) {
			v.stringMatch(mapKey(mp+".queryParams", name), m.QueryParams[name], false)
		}
		if m.Port != 0 {
			v.check(mp+".port", validatePort(int(m.Port)))
		}
		v.labels(mp+".sourceLabels", m.SourceLabels)
		v.gatewayNames(mp+".gateways", m.Gateways)
		if m.SourceNamespace != "" && !isDNS1123Label(m.SourceNamespace) {
			v.errorf(mp+".sourceNamespace", "%q is not a valid namespace", m.SourceNamespace)
		}
	}
}

// stringMatch checks a StringMatch: prefixes may not be empty (except
// for uri) and regexes must compile as RE2. An empty StringMatch, which
// matches on presence, is accepted.
func (v *validator) stringMatch(field string, sm *networking.StringMatch, allowEmptyPrefix bool) {
	switch mt := sm.GetMatchType().(type) {
	case *networking.StringMatch_Prefix:
		if mt.Prefix == "" && !allowEmptyPrefix {
			v.errorf(field+".prefix", "prefix match must not be empty")
		}
	case *networking.StringMatch_Regex:
		if mt.Regex == "" {
			v.errorf(field+".regex", "regex match must not be empty")
		} else {
			v.check(field+".regex", validateRegex(mt.Regex))
		}
	}
}

// Methods Istio accepts in corsPolicy.allowMethods.
var corsMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true,
	http.MethodOptions: true, http.MethodTrace: true, "*": true,
}

func (v *validator) corsPolicy(p string, c *networking.CorsPolicy) {
	if c == nil {
		return
	}
	for i, o := range c.AllowOrigins {
		f := idx(p+".allowOrigins", i)
		var s string
		switch mt := o.GetMatchType().(type) {
		case *networking.StringMatch_Exact:
			s = mt.Exact
		case *networking.StringMatch_Prefix:
			s = mt.Prefix
		case *networking.StringMatch_Regex:
			s = mt.Regex
		}
		if s == "" {
			v.errorf(f, "an allowed origin needs a non-empty exact, prefix or regex")
		} else if re, ok := o.GetMatchType().(*networking.StringMatch_Regex); ok {
			v.check(f+".regex", validateRegex(re.Regex))
		}
	}
	for i, m := range c.AllowMethods {
		if !corsMethods[m] {
			v.errorf(idx(p+".allowMethods", i), "%q is not a supported HTTP method (use GET, POST, ... in upper case, or *)", m)
		}
	}
	for i, h := range c.AllowHeaders {
		if h != "*" {
			v.check(idx(p+".allowHeaders", i), validateHTTPHeaderName(h))
		}
	}
	for i, h := range c.ExposeHeaders {
		if h != "*" {
			v.check(idx(p+".exposeHeaders", i), validateHTTPHeaderName(h))
		}
	}
	if c.MaxAge != nil {
		v.checkDuration(p+".maxAge", c.MaxAge)
		if c.MaxAge.Nanos > 0 {
			v.errorf(p+".maxAge", "maxAge is only accurate to seconds; use whole seconds")
		}
	}
}

// gRPC status names Istio accepts for abort faults.
var grpcStatuses = map[string]bool{
	"OK": true, "CANCELLED": true, "UNKNOWN": true, "INVALID_ARGUMENT": true,
	"DEADLINE_EXCEEDED": true, "NOT_FOUND": true, "ALREADY_EXISTS": true,
	"PERMISSION_DENIED": true, "RESOURCE_EXHAUSTED": true, "FAILED_PRECONDITION": true,
	"ABORTED": true, "OUT_OF_RANGE": true, "UNIMPLEMENTED": true, "INTERNAL": true,
	"UNAVAILABLE": true, "DATA_LOSS": true, "UNAUTHENTICATED": true,
}

func validateHTTPStatus(status int64) error {
	if status < 200 || status > 600 {
		return fmt.Errorf("HTTP status %d is not in the range 200..599", status)
	}
	return nil
}

func (v *validator) faultInjection(p string, f *networking.HTTPFaultInjection) {
	if f == nil {
		return
	}
	if f.Abort == nil && f.Delay == nil {
		v.errorf(p, "a fault needs an abort, a delay or both")
	}
	if a := f.Abort; a != nil {
		v.check(p+".abort.percentage", validatePercentage(a.Percentage))
		switch et := a.ErrorType.(type) {
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if !grpcStatuses[et.GrpcStatus] {
				v.errorf(p+".abort.grpcStatus", "%q is not a gRPC status name; use one such as NOT_FOUND or UNAVAILABLE "+
					"(https://github.com/grpc/grpc/blob/master/doc/statuscodes.md)", et.GrpcStatus)
			}
		case *networking.HTTPFaultInjection_Abort_Http2Error:
			v.errorf(p+".abort.http2Error", "HTTP/2 abort faults are not supported; use httpStatus or grpcStatus")
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			v.check(p+".abort.httpStatus", validateHTTPStatus(int64(et.HttpStatus)))
		}
	}
	if d := f.Delay; d != nil {
		v.check(p+".delay.percentage", validatePercentage(d.Percentage))
		if d.Percent != 0 { //nolint:staticcheck // deprecated field still accepted
			v.check(p+".delay.percent", validatePercent(d.Percent)) //nolint:staticcheck
		}
		switch dt := d.HttpDelayType.(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			v.checkDuration(p+".delay.fixedDelay", dt.FixedDelay)
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			v.errorf(p+".delay.exponentialDelay", "exponentialDelay is not supported; use fixedDelay")
		}
	}
}

// destination checks a route destination, when set.
func (v *validator) destination(p string, d *networking.Destination) {
	if d == nil {
		return
	}
	switch {
	case d.Host == "":
		v.errorf(p+".host", "required: name the service, such as \"reviews\" or \"reviews.default.svc.cluster.local\"")
	case d.Host == "*":
		v.errorf(p+".host", "\"*\" is not a valid destination host; name one service")
	default:
		v.check(p+".host", validateWildcardDomain(d.Host))
	}
	if d.Subset != "" {
		v.check(p+".subset", validateSubsetName(d.Subset))
	}
	if d.Port != nil {
		v.check(p+".port.number", validatePort(int(d.Port.GetNumber())))
	}
}

func validateSubsetName(name string) error {
	if name == "" {
		return fmt.Errorf("subset name cannot be empty")
	}
	if !isDNS1123Label(name) {
		return fmt.Errorf("subset name %q is invalid: it must be a DNS label (letters, digits and '-', at most 63 characters)", name)
	}
	return nil
}

// Retry conditions Envoy supports in retryOn, besides HTTP status codes.
var retryOnPolicies = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true,
	"connect-failure": true, "retriable-4xx": true, "refused-stream": true,
	"retriable-status-codes": true, "retriable-headers": true, "envoy-ratelimited": true,
	"http3-post-connect-failure": true,
	"cancelled":                  true, "deadline-exceeded": true, "internal": true,
	"resource-exhausted": true, "unavailable": true,
}

func (v *validator) httpRetry(p string, r *networking.HTTPRetry) {
	if r == nil {
		return
	}
	if r.Attempts < 0 {
		v.errorf(p+".attempts", "cannot be negative")
	}
	if r.Attempts == 0 && (r.PerTryTimeout != nil || r.RetryOn != "" || r.RetryRemoteLocalities != nil) {
		v.errorf(p+".attempts", "retry settings are configured but attempts is 0, which disables retries")
	}
	v.checkDuration(p+".perTryTimeout", r.PerTryTimeout)
	if r.RetryOn != "" {
		for _, policy := range strings.Split(r.RetryOn, ",") {
			code, _ := strconv.Atoi(policy)
			if http.StatusText(code) == "" && !retryOnPolicies[policy] {
				v.errorf(p+".retryOn", "%q is not a valid retryOn condition; use conditions such as 5xx, "+
					"gateway-error, connect-failure, retriable-4xx, reset, or HTTP status codes", policy)
			}
		}
	}
	v.checkDuration(p+".backoff", r.Backoff)
}

func (v *validator) httpRedirect(p string, r *networking.HTTPRedirect) {
	if r == nil {
		return
	}
	if r.Uri == "" && r.Authority == "" && r.RedirectPort == nil && r.Scheme == "" && r.PrefixRewrite == "" {
		v.errorf(p, "a redirect must set at least one of uri, prefixRewrite, authority, scheme, port or derivePort")
	}
	if r.Uri != "" && r.PrefixRewrite != "" {
		v.errorf(p+".prefixRewrite", "uri and prefixRewrite cannot both be set")
	}
	if r.RedirectCode != 0 && (r.RedirectCode < 300 || r.RedirectCode > 399) {
		v.errorf(p+".redirectCode", "%d is not a valid redirect code; it must be 3xx, such as 301, 302, 307 or 308", r.RedirectCode)
	}
	if r.Scheme != "" && r.Scheme != "http" && r.Scheme != "https" {
		v.errorf(p+".scheme", "invalid redirect scheme %q: it must be \"http\" or \"https\"", r.Scheme)
	}
	if port, ok := r.RedirectPort.(*networking.HTTPRedirect_Port); ok {
		v.check(p+".port", validatePort(int(port.Port)))
	}
}

func (v *validator) directResponse(p string, d *networking.HTTPDirectResponse) {
	if d == nil {
		return
	}
	if d.Body != nil {
		size := 0
		switch b := d.Body.Specifier.(type) {
		case *networking.HTTPBody_String_:
			size = len(b.String_)
		case *networking.HTTPBody_Bytes:
			size = len(b.Bytes)
		}
		if size > 1<<20 {
			v.errorf(p+".body", "body is %d bytes; direct responses must be less than 1MB", size)
		}
	}
	v.check(p+".status", validateHTTPStatus(int64(d.Status)))
}

func (v *validator) httpRewrite(p string, r *networking.HTTPRewrite) {
	if r == nil {
		return
	}
	if r.Uri != "" && r.UriRegexRewrite != nil {
		v.errorf(p, "a rewrite may set only one of uri and uriRegexRewrite")
	}
	if r.Uri == "" && r.UriRegexRewrite == nil && r.Authority == "" {
		v.errorf(p, "a rewrite must set at least one of uri, uriRegexRewrite or authority")
	}
	if rr := r.UriRegexRewrite; rr != nil {
		if rr.Match == "" || rr.Rewrite == "" {
			v.errorf(p+".uriRegexRewrite", "both match and rewrite are required")
		}
		if rr.Match != "" {
			v.check(p+".uriRegexRewrite.match", validateRegex(rr.Match))
		}
	}
}

// authorityRewrite checks that the authority is rewritten in one place
// at most.
func (v *validator) authorityRewrite(p string, route *networking.HTTPRoute) {
	current := route.GetRewrite().GetAuthority()
	req := route.GetHeaders().GetRequest()
	for _, op := range []struct {
		name string
		m    map[string]string
	}{{"set", req.GetSet()}, {"add", req.GetAdd()}} {
		for _, k := range slices.Sorted(maps.Keys(op.m)) {
			if !isAuthorityHeader(k) {
				continue
			}
			if current != "" {
				v.errorf(mapKey(p+".headers.request."+op.name, k),
					"the authority is rewritten more than once: already %q, now %q", current, op.m[k])
				return
			}
			current = op.m[k]
		}
	}
}

func (v *validator) httpRouteDestinations(p string, dests []*networking.HTTPRouteDestination) {
	weights := make([]int32, len(dests))
	for i, d := range dests {
		if d == nil {
			v.errorf(idx(p, i), "route destination may not be null")
			continue
		}
		v.headerOperations(idx(p, i)+".headers", d.Headers)
		v.weightedDestination(idx(p, i), d.Destination, d.Weight)
		weights[i] = d.Weight
	}
	v.destinationWeights(p, weights)
}

func (v *validator) routeDestinations(p string, dests []*networking.RouteDestination) {
	weights := make([]int32, len(dests))
	for i, d := range dests {
		if d == nil {
			v.errorf(idx(p, i), "route destination may not be null")
			continue
		}
		v.weightedDestination(idx(p, i), d.Destination, d.Weight)
		weights[i] = d.Weight
	}
	v.destinationWeights(p, weights)
}

// weightedDestination checks one destination of an HTTP, TCP or TLS route.
func (v *validator) weightedDestination(dp string, d *networking.Destination, weight int32) {
	if d == nil {
		v.errorf(dp+".destination", "required")
	}
	v.destination(dp+".destination", d)
	if weight < 0 {
		v.errorf(dp+".weight", "weight %d cannot be negative", weight)
	}
}

// destinationWeights: Istio no longer needs weights to add up to 100, only
// that several destinations do not all weigh 0.
func (v *validator) destinationWeights(p string, weights []int32) {
	var total int64
	for _, w := range weights {
		total += int64(w)
	}
	if len(weights) > 1 && total == 0 {
		v.errorf(p, "the weights of the destinations add up to 0; give at least one destination a positive weight")
	}
}

func (v *validator) tlsRoute(p string, route *networking.TLSRoute, vs *networking.VirtualService) {
	if route == nil {
		return
	}
	if len(route.Match) == 0 {
		v.errorf(p+".match", "a tls route needs at least one match with sniHosts")
	}
	for i, m := range route.Match {
		mp := idx(p+".match", i)
		if m == nil {
			v.errorf(mp, "tls match may not be null")
			continue
		}
		if len(m.SniHosts) == 0 {
			v.errorf(mp+".sniHosts", "a tls match needs at least one SNI host")
		}
		for j, sni := range m.SniHosts {
			v.sniHost(idx(mp+".sniHosts", j), sni, vs)
		}
		for j, s := range m.DestinationSubnets {
			v.check(idx(mp+".destinationSubnets", j), validateIPSubnet(s))
		}
		if m.Port != 0 {
			v.check(mp+".port", validatePort(int(m.Port)))
		}
		v.labels(mp+".sourceLabels", m.SourceLabels)
		v.gatewayNames(mp+".gateways", m.Gateways)
	}
	if len(route.Route) == 0 {
		v.errorf(p+".route", "a tls route needs at least one destination")
	}
	v.routeDestinations(p+".route", route.Route)
}

// sniHost checks an SNI host is valid and within the VirtualService's hosts.
func (v *validator) sniHost(f, sni string, vs *networking.VirtualService) {
	var err error
	if isGatewayBound(vs) {
		err = validateGatewayVirtualServiceHost(true, sni)
	} else {
		err = validateWildcardDomain(sni)
	}
	if err != nil {
		// An IP address goes against the SNI specification, but Istio
		// only warns about it.
		if !isIPAddress(sni) {
			v.check(f, err)
		}
		return
	}
	for _, h := range vs.Hosts {
		if hostSubsetOf(sni, h) {
			return
		}
	}
	v.errorf(f, "SNI host %q is not within any of the VirtualService's hosts [%s]", sni, strings.Join(vs.Hosts, ", "))
}

func (v *validator) tcpRoute(p string, route *networking.TCPRoute) {
	if route == nil {
		return
	}
	for i, m := range route.Match {
		mp := idx(p+".match", i)
		if m == nil {
			v.errorf(mp, "tcp match may not be null")
			continue
		}
		for j, s := range m.DestinationSubnets {
			v.check(idx(mp+".destinationSubnets", j), validateIPSubnet(s))
		}
		if m.Port != 0 {
			v.check(mp+".port", validatePort(int(m.Port)))
		}
		v.labels(mp+".sourceLabels", m.SourceLabels)
		v.gatewayNames(mp+".gateways", m.Gateways)
	}
	if len(route.Route) == 0 {
		v.errorf(p+".route", "a tcp route needs at least one destination")
	}
	v.routeDestinations(p+".route", route.Route)
}
