package gatewayapi

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// httpRule is one converted Istio http route with what orders it.
type httpRule struct {
	hr    *networking.HTTPRoute
	extra *RouteExtra
	prec  precedence
}

// precedence orders rules as the Gateway API's HTTPRouteRule documents:
// an Exact path, then the longest PathPrefix, then a method match, then
// the most header matches, then the most query parameter matches; then
// the older route (here: namespace/name order), then rule and match order.
// Where a RegularExpression path ranks is left to implementations; as in
// Envoy Gateway it comes after Exact and before PathPrefix (longest
// expression first), so a catch-all prefix does not hide it.
type precedence struct {
	pathRank         int // 3 Exact, 2 RegularExpression, 1 PathPrefix
	pathLen          int
	method           bool
	headers, queries int
	route, rule, idx int
}

func (a precedence) less(b precedence) bool {
	switch {
	case a.pathRank != b.pathRank:
		return a.pathRank > b.pathRank
	case a.pathLen != b.pathLen:
		return a.pathLen > b.pathLen
	case a.method != b.method:
		return a.method
	case a.headers != b.headers:
		return a.headers > b.headers
	case a.queries != b.queries:
		return a.queries > b.queries
	case a.route != b.route:
		return a.route < b.route
	case a.rule != b.rule:
		return a.rule < b.rule
	}
	return a.idx < b.idx
}

// ruleContext is where a route's rules are converted for.
type ruleContext struct {
	// kind is the route's kind, for ReferenceGrants.
	kind  string
	ns    string
	route int // the route's order
	// listenerPort is the Gateway listener's port (0 for mesh): a
	// redirect without scheme or port goes to it.
	listenerPort int32
	// meshPort, for mesh parents with a port, restricts matches to it.
	meshPort int32
}

func (c *converter) httpRoute(r *config.Resource, spec *gwv1.HTTPRouteSpec) {
	c.httpLike(r, "HTTPRoute", spec)
}

// httpLike converts an HTTPRoute, or a GRPCRoute restated as one.
func (c *converter) httpLike(r *config.Resource, kind string, spec *gwv1.HTTPRouteSpec) {
	ri := newRouteInfo(c, r, kind, spec.ParentRefs, spec.Hostnames)
	ri.meshAllowed = true
	c.out.Status.Routes = append(c.out.Status.Routes, ri.status)
	attachments := c.bind(ri)
	order := c.http.nextRoute()
	// A mesh route may send to the Service it is attached to without a
	// ReferenceGrant: that is the traffic it was given (GEP-1426 consumer
	// routes in another namespace than the Service).
	c.parentServices = map[string]bool{}
	for _, a := range attachments {
		if a.listener == nil {
			c.parentServices[a.serviceNS+"/"+a.serviceName] = true
		}
	}
	defer func() { c.parentServices = nil }()
	rules := make([]gwv1.HTTPRouteRule, len(spec.Rules))
	var promoted []string
	for i, rule := range spec.Rules {
		var why string
		rules[i], why = promoteBackendFilters(rule)
		if why != "" {
			promoted = append(promoted, fmt.Sprintf("rule %d: %s", i, why))
		}
	}
	// Conversion does not depend on the parent for references; resolve
	// once for status.
	resolved, partial := c.checkHTTPRules(r, kind, rules)
	partial = append(promoted, partial...)
	setResolvedRefs(ri, resolved, partial)
	for _, a := range attachments {
		ctx := ruleContext{kind: kind, ns: r.Namespace, route: order}
		if a.listener != nil {
			ctx.listenerPort = a.listener.spec.Port
		} else {
			ctx.meshPort = a.port
		}
		var out []*httpRule
		for i, rule := range rules {
			out = append(out, c.convertHTTPRule(r, i, rule, ctx)...)
		}
		c.http.add(a, r, out)
	}
}

// promoteBackendFilters handles the filters of a backendRef that act on
// the request as a whole (RequestRedirect, URLRewrite, RequestMirror,
// CORS). With one backend they apply to every request of the rule, so
// they become the rule's own (Envoy's weighted clusters cannot redirect or
// rewrite per cluster); with several backends they cannot be honoured and
// are dropped, with the reason. Header modifiers stay per backend.
func promoteBackendFilters(rule gwv1.HTTPRouteRule) (gwv1.HTTPRouteRule, string) {
	wholeRequest := func(t gwv1.HTTPRouteFilterType) bool {
		switch t {
		case gwv1.HTTPRouteFilterRequestRedirect, gwv1.HTTPRouteFilterURLRewrite, gwv1.HTTPRouteFilterRequestMirror, gwv1.HTTPRouteFilterCORS:
			return true
		}
		return false
	}
	var found bool
	for _, b := range rule.BackendRefs {
		for _, f := range b.Filters {
			found = found || wholeRequest(f.Type)
		}
	}
	if !found {
		return rule, ""
	}
	out := rule
	out.Filters = append([]gwv1.HTTPRouteFilter(nil), rule.Filters...)
	out.BackendRefs = make([]gwv1.HTTPBackendRef, len(rule.BackendRefs))
	var dropped []string
	for i, b := range rule.BackendRefs {
		nb := b
		nb.Filters = nil
		for _, f := range b.Filters {
			if !wholeRequest(f.Type) {
				nb.Filters = append(nb.Filters, f)
				continue
			}
			if len(rule.BackendRefs) == 1 {
				out.Filters = append(out.Filters, f)
			} else {
				dropped = append(dropped, string(f.Type))
			}
		}
		out.BackendRefs[i] = nb
	}
	if len(dropped) > 0 {
		return out, fmt.Sprintf("%s filters on one of several backendRefs are not supported and are ignored", strings.Join(dedupeStrings(dropped), ", "))
	}
	return out, ""
}

// checkHTTPRules resolves every backend and mirror reference of the rules
// and reports ResolvedRefs, plus what is partially unsupported.
func (c *converter) checkHTTPRules(r *config.Resource, kind string, rules []gwv1.HTTPRouteRule) (Condition, []string) {
	var problems []Condition
	var partial []string
	for i, rule := range rules {
		var refs []gwv1.BackendRef
		for _, b := range rule.BackendRefs {
			refs = append(refs, b.BackendRef)
		}
		problems = append(problems, c.resolveBackends(r, kind, refs).problems...)
		for _, f := range rule.Filters {
			switch f.Type {
			case gwv1.HTTPRouteFilterRequestMirror:
				if _, p := c.resolveBackend(r, kind, f.RequestMirror.BackendRef); p != nil {
					problems = append(problems, *p)
				}
			case gwv1.HTTPRouteFilterExtensionRef:
				problems = append(problems, cond(condResolvedRefs, false, string(gwv1.RouteReasonInvalidKind),
					"rule %d: extensionRef %s/%s %s is not a filter sluice knows; the rule answers 500",
					i, f.ExtensionRef.Group, f.ExtensionRef.Kind, f.ExtensionRef.Name))
			case gwv1.HTTPRouteFilterExternalAuth:
				partial = append(partial, fmt.Sprintf("rule %d: the ExternalAuth filter is not supported; the rule answers 500", i))
			}
		}
		if rule.SessionPersistence != nil {
			partial = append(partial, fmt.Sprintf("rule %d: sessionPersistence is not supported and is ignored", i))
		}
	}
	if len(problems) == 0 {
		return cond(condResolvedRefs, true, string(gwv1.RouteReasonResolvedRefs), ""), partial
	}
	first := problems[0]
	var msgs []string
	for _, p := range problems {
		msgs = append(msgs, p.Message)
	}
	first.Message = strings.Join(dedupeStrings(msgs), "; ")
	return first, partial
}

// convertHTTPRule turns one rule into Istio http routes: one per match (so
// matches sort individually), more where a prefix replacement needs the
// exact path and the path below it told apart.
func (c *converter) convertHTTPRule(r *config.Resource, i int, rule gwv1.HTTPRouteRule, ctx ruleContext) []*httpRule {
	matches := rule.Matches
	if len(matches) == 0 {
		matches = []gwv1.HTTPRouteMatch{{}}
	}
	name := fmt.Sprintf("%s.%s.%d", r.Namespace, r.Name, i)
	if rule.Name != nil {
		name = fmt.Sprintf("%s.%s.%s", r.Namespace, r.Name, *rule.Name)
	}
	base, extra := c.httpAction(r, rule, ctx)
	var out []*httpRule
	for j, m := range matches {
		prec := matchPrecedence(m)
		prec.route, prec.rule, prec.idx = ctx.route, i, j
		im := httpMatch(m)
		if ctx.meshPort != 0 {
			im.Port = uint32(ctx.meshPort)
		}
		for _, variant := range prefixVariants(m, rule.Filters, im) {
			hr := cloneRoute(base)
			hr.Name = name
			hr.Match = []*networking.HTTPMatchRequest{variant.match}
			ex := extra
			switch {
			case variant.rewrite != nil:
				if hr.Rewrite == nil {
					hr.Rewrite = &networking.HTTPRewrite{}
				}
				hr.Rewrite.Uri = *variant.rewrite
			case variant.redirectFull != nil && hr.Redirect != nil:
				hr.Redirect.Uri = *variant.redirectFull
			case variant.redirectPrefix != nil && hr.Redirect != nil:
				e := RouteExtra{}
				if ex != nil {
					e = *ex
				}
				e.RedirectPrefix = variant.redirectPrefix
				ex = &e
			}
			out = append(out, &httpRule{hr: hr, extra: ex, prec: prec})
		}
	}
	return out
}

func cloneRoute(hr *networking.HTTPRoute) *networking.HTTPRoute {
	return proto.Clone(hr).(*networking.HTTPRoute)
}

func matchPrecedence(m gwv1.HTTPRouteMatch) precedence {
	p := precedence{pathRank: 1, pathLen: 1}
	if pm := m.Path; pm != nil {
		v := "/"
		if pm.Value != nil {
			v = *pm.Value
		}
		switch pathType(pm) {
		case gwv1.PathMatchExact:
			p.pathRank, p.pathLen = 3, len(v)
		case gwv1.PathMatchRegularExpression:
			p.pathRank, p.pathLen = 2, len(v)
		case gwv1.PathMatchPathPrefix:
			p.pathRank, p.pathLen = 1, len(trimPrefix(v))
		}
	}
	p.method = m.Method != nil
	p.headers, p.queries = len(m.Headers), len(m.QueryParams)
	return p
}

func pathType(pm *gwv1.HTTPPathMatch) gwv1.PathMatchType {
	if pm.Type == nil {
		return gwv1.PathMatchPathPrefix
	}
	return *pm.Type
}

// trimPrefix drops a PathPrefix's trailing slashes: the Gateway API
// matches /foo/ as /foo. The root stays "/".
func trimPrefix(v string) string {
	t := strings.TrimRight(v, "/")
	if t == "" {
		return "/"
	}
	return t
}

// httpMatch converts one Gateway API match.
func httpMatch(m gwv1.HTTPRouteMatch) *networking.HTTPMatchRequest {
	im := &networking.HTTPMatchRequest{}
	if pm := m.Path; pm != nil {
		v := "/"
		if pm.Value != nil {
			v = *pm.Value
		}
		switch pathType(pm) {
		case gwv1.PathMatchExact:
			im.Uri = exact(v)
		case gwv1.PathMatchPathPrefix:
			im.Uri = prefix(trimPrefix(v))
		case gwv1.PathMatchRegularExpression:
			im.Uri = &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: v}}
		}
	} else {
		im.Uri = prefix("/")
	}
	for _, h := range m.Headers {
		name := strings.ToLower(string(h.Name))
		if im.Headers == nil {
			im.Headers = map[string]*networking.StringMatch{}
		}
		if _, dup := im.Headers[name]; dup {
			continue // the first match of a name wins
		}
		if h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression {
			im.Headers[name] = &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: h.Value}}
		} else {
			im.Headers[name] = exact(h.Value)
		}
	}
	for _, q := range m.QueryParams {
		if im.QueryParams == nil {
			im.QueryParams = map[string]*networking.StringMatch{}
		}
		if _, dup := im.QueryParams[string(q.Name)]; dup {
			continue
		}
		if q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression {
			im.QueryParams[string(q.Name)] = &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: q.Value}}
		} else {
			im.QueryParams[string(q.Name)] = exact(q.Value)
		}
	}
	if m.Method != nil {
		im.Method = exact(string(*m.Method))
	}
	return im
}

func exact(s string) *networking.StringMatch {
	return &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: s}}
}

func prefix(s string) *networking.StringMatch {
	return &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: s}}
}

// matchVariant is one Istio match a Gateway API match turns into, with
// the path rewrite or redirect path for it.
type matchVariant struct {
	match          *networking.HTTPMatchRequest
	rewrite        *string
	redirectFull   *string
	redirectPrefix *string
}

// prefixVariants handles ReplacePrefixMatch. With Envoy's prefix_rewrite
// on a path_separated_prefix match, /prefix/rest becomes <replacement>/rest,
// which is the Gateway API's rule when the replacement does not end in
// '/'. A replacement of "/" (or ending in '/'), or a match on the root
// prefix, would double or lose the separator, so the match is split in
// two standard Envoy matches: the exact prefix (rewritten to the
// replacement) and the prefix with its separator (rewritten to the
// replacement with one).
func prefixVariants(m gwv1.HTTPRouteMatch, filters []gwv1.HTTPRouteFilter, im *networking.HTTPMatchRequest) []matchVariant {
	var replace *string
	redirect := false
	for _, f := range filters {
		switch {
		case f.Type == gwv1.HTTPRouteFilterURLRewrite && f.URLRewrite != nil && f.URLRewrite.Path != nil &&
			f.URLRewrite.Path.Type == gwv1.PrefixMatchHTTPPathModifier:
			replace = f.URLRewrite.Path.ReplacePrefixMatch
		case f.Type == gwv1.HTTPRouteFilterRequestRedirect && f.RequestRedirect != nil && f.RequestRedirect.Path != nil &&
			f.RequestRedirect.Path.Type == gwv1.PrefixMatchHTTPPathModifier:
			replace, redirect = f.RequestRedirect.Path.ReplacePrefixMatch, true
		}
	}
	if replace == nil || m.Path == nil && im.GetUri().GetPrefix() == "" || m.Path != nil && pathType(m.Path) != gwv1.PathMatchPathPrefix {
		return []matchVariant{{match: im}}
	}
	p := im.GetUri().GetPrefix()
	r := strings.TrimRight(*replace, "/")
	set := func(v *matchVariant, to string) {
		if redirect {
			v.redirectPrefix = &to
		} else {
			v.rewrite = &to
		}
	}
	if p != "/" && r != "" {
		v := matchVariant{match: im}
		set(&v, r)
		return []matchVariant{v}
	}
	exactM := cloneMatch(im)
	exactM.Uri = exact(p)
	whole := orRoot(r)
	ev := matchVariant{match: exactM}
	if redirect {
		ev.redirectFull = &whole
	} else {
		ev.rewrite = &whole
	}
	below := cloneMatch(im)
	sep := p
	if sep != "/" {
		sep += "/"
	}
	below.Uri = prefix(sep)
	bv := matchVariant{match: below}
	set(&bv, r+"/")
	return []matchVariant{ev, bv}
}

func orRoot(s string) string {
	if s == "" {
		return "/"
	}
	return s
}

func cloneMatch(m *networking.HTTPMatchRequest) *networking.HTTPMatchRequest {
	return proto.Clone(m).(*networking.HTTPMatchRequest)
}

// httpAction converts a rule's filters, backends, timeouts and retry into
// an Istio http route without matches.
func (c *converter) httpAction(r *config.Resource, rule gwv1.HTTPRouteRule, ctx ruleContext) (*networking.HTTPRoute, *RouteExtra) {
	hr := &networking.HTTPRoute{}
	unsupported := false
	for _, f := range rule.Filters {
		switch f.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier, gwv1.HTTPRouteFilterResponseHeaderModifier:
			applyHeaderFilter(&hr.Headers, f)
		case gwv1.HTTPRouteFilterRequestRedirect:
			hr.Redirect = redirect(f.RequestRedirect, ctx)
		case gwv1.HTTPRouteFilterURLRewrite:
			hr.Rewrite = rewrite(f.URLRewrite)
		case gwv1.HTTPRouteFilterRequestMirror:
			if m := c.mirror(r, ctx.kind, f.RequestMirror); m != nil {
				hr.Mirrors = append(hr.Mirrors, m)
			}
		case gwv1.HTTPRouteFilterCORS:
			hr.CorsPolicy = corsPolicy(f.CORS)
		case gwv1.HTTPRouteFilterExtensionRef, gwv1.HTTPRouteFilterExternalAuth:
			unsupported = true
		}
	}
	if rt := rule.Retry; rt != nil {
		hr.Retries = retry(rt)
	}
	if t := rule.Timeouts; t != nil {
		var req, be time.Duration
		var hasReq, hasBE bool
		if t.Request != nil {
			if d, err := config.ParseGatewayDuration(*t.Request); err == nil {
				req, hasReq = d, true
			}
		}
		if t.BackendRequest != nil {
			if d, err := config.ParseGatewayDuration(*t.BackendRequest); err == nil {
				be, hasBE = d, true
			}
		}
		if hasReq {
			hr.Timeout = durationpb.New(req) // 0 disables it
		}
		if hasBE && be > 0 && (!hasReq || req == 0 || be < req) {
			if hr.Retries != nil {
				hr.Retries.PerTryTimeout = durationpb.New(be)
			} else {
				// Istio's rule: without a retry policy the backend
				// request timeout bounds the one attempt.
				hr.Timeout = durationpb.New(be)
			}
		}
	}
	if hr.Redirect != nil {
		return hr, nil
	}
	if unsupported {
		hr.DirectResponse = &networking.HTTPDirectResponse{Status: 500}
		return hr, nil
	}
	var refs []gwv1.BackendRef
	for _, b := range rule.BackendRefs {
		refs = append(refs, b.BackendRef)
	}
	res := c.resolveBackends(r, ctx.kind, refs)
	if res.validWeight == 0 {
		// No backends, only invalid ones, or every weight 0: the Gateway
		// API requires 500.
		hr.DirectResponse = &networking.HTTPDirectResponse{Status: 500}
		hr.Retries, hr.Mirrors = nil, nil
		return hr, nil
	}
	// Per-backend filters (header modifiers) go on the destinations.
	for i, b := range rule.BackendRefs {
		d := res.byRef[i]
		if d == nil {
			continue
		}
		for _, f := range b.Filters {
			switch f.Type {
			case gwv1.HTTPRouteFilterRequestHeaderModifier, gwv1.HTTPRouteFilterResponseHeaderModifier:
				applyHeaderFilter(&d.Headers, f)
			}
		}
	}
	hr.Route = res.dests
	var extra *RouteExtra
	if res.invalidWeight > 0 {
		extra = &RouteExtra{InvalidWeight: uint32(res.invalidWeight)}
	}
	return hr, extra
}

// headerOps converts a header modifier: set overwrites, add appends,
// remove deletes. A name given twice keeps its first entry.
func headerOps(h *gwv1.HTTPHeaderFilter) *networking.Headers_HeaderOperations {
	if h == nil {
		return nil
	}
	out := &networking.Headers_HeaderOperations{}
	for _, e := range h.Set {
		if out.Set == nil {
			out.Set = map[string]string{}
		}
		if _, dup := out.Set[string(e.Name)]; !dup {
			out.Set[string(e.Name)] = e.Value
		}
	}
	for _, e := range h.Add {
		if out.Add == nil {
			out.Add = map[string]string{}
		}
		if _, dup := out.Add[string(e.Name)]; !dup {
			out.Add[string(e.Name)] = e.Value
		}
	}
	out.Remove = append(out.Remove, h.Remove...)
	return out
}

// redirect converts RequestRedirect. Without a port, the port is the
// scheme's well-known one when a scheme is given, else the listener's (so
// Location carries no port for http on 80 and https on 443).
func redirect(f *gwv1.HTTPRequestRedirectFilter, ctx ruleContext) *networking.HTTPRedirect {
	rd := &networking.HTTPRedirect{RedirectCode: 302}
	if f.StatusCode != nil {
		rd.RedirectCode = uint32(*f.StatusCode)
	}
	if f.Scheme != nil {
		rd.Scheme = *f.Scheme
	}
	if f.Hostname != nil {
		rd.Authority = string(*f.Hostname)
	}
	switch {
	case f.Port != nil:
		rd.RedirectPort = &networking.HTTPRedirect_Port{Port: uint32(*f.Port)}
	case f.Scheme != nil:
		rd.RedirectPort = &networking.HTTPRedirect_DerivePort{DerivePort: networking.HTTPRedirect_FROM_PROTOCOL_DEFAULT}
	case ctx.listenerPort != 0:
		rd.RedirectPort = &networking.HTTPRedirect_Port{Port: uint32(ctx.listenerPort)}
	}
	if p := f.Path; p != nil && p.Type == gwv1.FullPathHTTPPathModifier && p.ReplaceFullPath != nil {
		rd.Uri = *p.ReplaceFullPath
	}
	return rd
}

// rewrite converts URLRewrite: the hostname, and a full path replacement
// (a regex rewrite of the whole path; the query is kept). Prefix
// replacement is set per match by prefixVariants.
func rewrite(f *gwv1.HTTPURLRewriteFilter) *networking.HTTPRewrite {
	rw := &networking.HTTPRewrite{}
	if f.Hostname != nil {
		rw.Authority = string(*f.Hostname)
	}
	if p := f.Path; p != nil && p.Type == gwv1.FullPathHTTPPathModifier && p.ReplaceFullPath != nil {
		rw.UriRegexRewrite = &networking.RegexRewrite{Match: "^/.*$", Rewrite: *p.ReplaceFullPath}
	}
	return rw
}

func (c *converter) mirror(r *config.Resource, kind string, f *gwv1.HTTPRequestMirrorFilter) *networking.HTTPMirrorPolicy {
	d, problem := c.resolveBackend(r, kind, f.BackendRef)
	if problem != nil {
		return nil
	}
	m := &networking.HTTPMirrorPolicy{Destination: d}
	switch {
	case f.Percent != nil:
		m.Percentage = &networking.Percent{Value: float64(*f.Percent)}
	case f.Fraction != nil:
		den := int32(100)
		if f.Fraction.Denominator != nil {
			den = *f.Fraction.Denominator
		}
		if den > 0 {
			m.Percentage = &networking.Percent{Value: float64(f.Fraction.Numerator) * 100 / float64(den)}
		}
	}
	return m
}

func retry(rt *gwv1.HTTPRouteRetry) *networking.HTTPRetry {
	out := &networking.HTTPRetry{Attempts: 2, RetryOn: "connect-failure,refused-stream,unavailable,cancelled"}
	if rt.Attempts != nil {
		out.Attempts = int32(*rt.Attempts)
	}
	if len(rt.Codes) > 0 {
		var codes []string
		for _, c := range rt.Codes {
			codes = append(codes, fmt.Sprint(int(c)))
		}
		out.RetryOn += "," + strings.Join(codes, ",")
	}
	if rt.Backoff != nil {
		if d, err := config.ParseGatewayDuration(*rt.Backoff); err == nil {
			out.Backoff = durationpb.New(d)
		}
	}
	return out
}

// corsPolicy converts the CORS filter; an origin with '*' matches any
// characters in its place. The policy's semantics are the Envoy CORS
// filter's (the gateway echoes the request's Origin, never '*').
func corsPolicy(f *gwv1.HTTPCORSFilter) *networking.CorsPolicy {
	cp := &networking.CorsPolicy{}
	for _, o := range f.AllowOrigins {
		s := string(o)
		if strings.Contains(s, "*") {
			re := strings.ReplaceAll(regexp.QuoteMeta(s), `\*`, `.*`)
			cp.AllowOrigins = append(cp.AllowOrigins, &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: re}})
		} else {
			cp.AllowOrigins = append(cp.AllowOrigins, exact(s))
		}
	}
	for _, m := range f.AllowMethods {
		cp.AllowMethods = append(cp.AllowMethods, string(m))
	}
	for _, h := range f.AllowHeaders {
		cp.AllowHeaders = append(cp.AllowHeaders, string(h))
	}
	for _, h := range f.ExposeHeaders {
		cp.ExposeHeaders = append(cp.ExposeHeaders, string(h))
	}
	// The CRD defaults maxAge to 5 seconds: the API server would store 5
	// for an omitted maxAge, and the Gateway API says to send 5 then.
	maxAge := f.MaxAge
	if maxAge <= 0 {
		maxAge = 5
	}
	cp.MaxAge = durationpb.New(time.Duration(maxAge) * time.Second)
	if f.AllowCredentials != nil {
		cp.AllowCredentials = wrapperspb.Bool(*f.AllowCredentials)
	}
	// A preflight from an origin not allowed is answered by the gateway
	// (200/204 without the CORS headers, or 403), never forwarded: Envoy's
	// forward_not_matching_preflights false, VirtualService IGNORE.
	cp.UnmatchedPreflights = networking.CorsPolicy_IGNORE
	return cp
}

// httpCollector gathers the converted rules per listener and hostname, and
// per mesh Service, then emits the VirtualServices.
type httpCollector struct {
	c      *converter
	routes int
	gw     map[*listenerInfo]*listenerRules
	gwList []*listenerInfo
	mesh   map[meshKey]*meshRules
	meshes []meshKey
}

type listenerRules struct {
	entries []*hostRules
}

// hostRules are one route's rules for one of its hostnames on a listener.
type hostRules struct {
	host   string
	source config.Key
	rules  []*httpRule
}

type meshKey struct{ routeNS, serviceNS, host string }

type meshRules struct {
	sources []config.Key
	source  config.Source
	rules   []*httpRule
}

func newHTTPCollector(c *converter) *httpCollector {
	return &httpCollector{c: c, gw: map[*listenerInfo]*listenerRules{}, mesh: map[meshKey]*meshRules{}}
}

func (h *httpCollector) nextRoute() int { h.routes++; return h.routes }

func (h *httpCollector) add(a *attachment, route *config.Resource, rules []*httpRule) {
	src := route.Key()
	if a.listener != nil {
		lr := h.gw[a.listener]
		if lr == nil {
			lr = &listenerRules{}
			h.gw[a.listener] = lr
			h.gwList = append(h.gwList, a.listener)
		}
		for _, host := range a.hostnames {
			lr.entries = append(lr.entries, &hostRules{host: host, source: src, rules: rules})
		}
		return
	}
	k := meshKey{routeNS: src.Namespace, serviceNS: a.serviceNS, host: a.serviceHost}
	mr := h.mesh[k]
	if mr == nil {
		mr = &meshRules{source: route.Source}
		h.mesh[k] = mr
		h.meshes = append(h.meshes, k)
	}
	mr.sources = append(mr.sources, src)
	mr.rules = append(mr.rules, rules...)
}

// emit writes one VirtualService per (listener, hostname) holding, in
// precedence order, the rules of every route whose hostname covers it,
// and one per (route namespace, Service) for mesh routes.
func (h *httpCollector) emit() {
	for _, li := range h.gwList {
		lr := h.gw[li]
		domains := map[string]bool{}
		for _, e := range lr.entries {
			domains[e.host] = true
		}
		list := slices.Sorted(maps.Keys(domains))
		sort.SliceStable(list, func(i, j int) bool { return domainRank(list[i]) < domainRank(list[j]) })
		for n, d := range list {
			type ranked struct {
				r              *httpRule
				exactLen, hLen int
			}
			var rs []ranked
			sem := &RouteSemantics{Routes: map[*networking.HTTPRoute]*RouteExtra{}}
			seen := map[config.Key]bool{}
			for _, e := range lr.entries {
				if e.host != d && !(strings.HasPrefix(e.host, "*") && config.HostMatches(e.host, d)) {
					continue
				}
				if !seen[e.source] {
					seen[e.source] = true
					sem.Sources = append(sem.Sources, e.source)
				}
				exactLen := 0
				if !strings.HasPrefix(e.host, "*") {
					exactLen = len(e.host)
				}
				for _, r := range e.rules {
					rs = append(rs, ranked{r, exactLen, len(e.host)})
				}
			}
			sort.SliceStable(rs, func(i, j int) bool {
				a, b := rs[i], rs[j]
				if a.exactLen != b.exactLen {
					return a.exactLen > b.exactLen
				}
				if a.hLen != b.hLen {
					return a.hLen > b.hLen
				}
				return a.r.prec.less(b.r.prec)
			})
			vs := &networking.VirtualService{Hosts: []string{d}, Gateways: []string{li.ref}}
			for _, x := range rs {
				r := x.r
				// A rule serving several hostnames is shared between
				// VirtualServices; each gets its own copy.
				hr := cloneRoute(r.hr)
				vs.Http = append(vs.Http, hr)
				if r.extra != nil {
					sem.Routes[hr] = r.extra
				}
			}
			h.c.out.VirtualServices = append(h.c.out.VirtualServices, &VirtualService{
				Resource:  h.c.generated(fmt.Sprintf("%s.%d", li.istioName, n), li.gw.res.Namespace, sem.Sources, li.gw.res.Source, vs),
				Semantics: sem,
			})
		}
	}
	// Consumer routes (in another namespace than the Service) come first:
	// in their namespace they take precedence over the Service's own.
	sort.SliceStable(h.meshes, func(i, j int) bool {
		ci, cj := h.meshes[i].routeNS != h.meshes[i].serviceNS, h.meshes[j].routeNS != h.meshes[j].serviceNS
		return ci && !cj
	})
	for n, k := range h.meshes {
		mr := h.mesh[k]
		rules := append([]*httpRule(nil), mr.rules...)
		sort.SliceStable(rules, func(i, j int) bool { return rules[i].prec.less(rules[j].prec) })
		vs := &networking.VirtualService{Hosts: []string{k.host}, Gateways: []string{"mesh"}, ExportTo: []string{"*"}}
		if k.routeNS != k.serviceNS {
			vs.ExportTo = []string{"."}
		}
		sem := &RouteSemantics{Sources: mr.sources, Routes: map[*networking.HTTPRoute]*RouteExtra{}}
		for _, r := range rules {
			hr := cloneRoute(r.hr)
			vs.Http = append(vs.Http, hr)
			if r.extra != nil {
				sem.Routes[hr] = r.extra
			}
		}
		name := fmt.Sprintf("gamma.%s.%d", strings.SplitN(k.host, ".", 2)[0], n)
		h.c.out.VirtualServices = append(h.c.out.VirtualServices, &VirtualService{
			Resource:  h.c.generated(name, k.routeNS, mr.sources, mr.source, vs),
			Semantics: sem,
		})
	}
}

// domainRank orders exact domains before wildcards, "*" last.
func domainRank(d string) string {
	switch {
	case d == "*":
		return "2"
	case strings.HasPrefix(d, "*"):
		return "1" + d
	}
	return "0" + d
}

// generated makes the resource of a generated VirtualService.
func (c *converter) generated(name, ns string, sources []config.Key, src config.Source, vs *networking.VirtualService) *config.Resource {
	var names []string
	for _, s := range sources {
		names = append(names, s.String())
	}
	return &config.Resource{
		Kind: config.KindVirtualService, APIVersion: "networking.istio.io/v1",
		Meta:   config.Meta{Name: name, Namespace: ns, Annotations: map[string]string{AnnotationSource: strings.Join(names, ", ")}},
		Spec:   vs,
		Source: src,
	}
}

// applyHeaderFilter sets a request or response header modifier filter on
// a route's or a destination's headers.
func applyHeaderFilter(h **networking.Headers, f gwv1.HTTPRouteFilter) {
	if *h == nil {
		*h = &networking.Headers{}
	}
	if f.Type == gwv1.HTTPRouteFilterRequestHeaderModifier {
		(*h).Request = headerOps(f.RequestHeaderModifier)
	} else {
		(*h).Response = headerOps(f.ResponseHeaderModifier)
	}
}
