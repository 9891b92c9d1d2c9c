package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Validation of Kubernetes Gateway API resources: the checks the API
// server runs from the Gateway API CRDs (OpenAPI patterns, enums, limits
// and the CEL rules of the standard channel) that matter to what sluice
// does with them. What is valid but not programmable (an unknown backend,
// a listener with a bad certificate) is not an error here: the Gateway API
// reports it in status, which sluice computes in pkg/gatewayapi.

// Patterns from the Gateway API types (kubebuilder validation markers).
var (
	gwSectionNameRe    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	gwHostnameRe       = regexp.MustCompile(`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	gwPreciseHostRe    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	gwControllerRe     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$`)
	gwProtocolRe       = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$`)
	gwHeaderNameRe     = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`)
	gwKindRe           = regexp.MustCompile(`^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	gwGroupRe          = regexp.MustCompile(`^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	gwDurationRe       = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)
	gwBadPathRe        = regexp.MustCompile(`(^|/)\.\.?(/|$)|//|%2[fF]|#`)
	gwGRPCServiceRe    = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	gwGRPCMethodRe     = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
	gwValidHTTPMethods = map[gwv1.HTTPMethod]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true,
		"CONNECT": true, "OPTIONS": true, "TRACE": true, "PATCH": true}
)

func (v *validator) gatewayClass(gc *gwv1.GatewayClassSpec) {
	switch {
	case gc.ControllerName == "":
		v.errorf("spec.controllerName", "required")
	case len(gc.ControllerName) > 253 || !gwControllerRe.MatchString(string(gc.ControllerName)):
		v.errorf("spec.controllerName", "%q is not a domain-prefixed path such as example.com/gateway-controller", gc.ControllerName)
	}
}

func (v *validator) k8sGateway(gw *gwv1.GatewaySpec) {
	if gw.GatewayClassName == "" {
		v.errorf("spec.gatewayClassName", "required")
	}
	switch n := len(gw.Listeners); {
	case n == 0:
		v.errorf("spec.listeners", "required: a Gateway needs at least one listener")
	case n > 64:
		v.errorf("spec.listeners", "%d listeners; at most 64 are allowed", n)
	}
	names := map[gwv1.SectionName]int{}
	type combo struct {
		port     int32
		protocol gwv1.ProtocolType
		hostname string
	}
	combos := map[combo]int{}
	for i, l := range gw.Listeners {
		p := idx("spec.listeners", i)
		v.sectionName(p+".name", l.Name)
		if first, dup := names[l.Name]; dup && l.Name != "" {
			v.errorf(p+".name", "duplicate listener name %q (also spec.listeners[%d]); listener names must be unique within the Gateway", l.Name, first)
		} else {
			names[l.Name] = i
		}
		v.gwPort(p+".port", l.Port)
		switch {
		case l.Protocol == "":
			v.errorf(p+".protocol", "required")
		case len(l.Protocol) > 255 || !gwProtocolRe.MatchString(string(l.Protocol)):
			v.errorf(p+".protocol", "%q is not a valid protocol", l.Protocol)
		}
		host := ""
		if l.Hostname != nil {
			host = string(*l.Hostname)
			v.gwHostname(p+".hostname", *l.Hostname)
			if l.Protocol == gwv1.TCPProtocolType || l.Protocol == gwv1.UDPProtocolType {
				v.errorf(p+".hostname", "must not be set for protocol %s", l.Protocol)
			}
		}
		k := combo{l.Port, l.Protocol, host}
		if first, dup := combos[k]; dup {
			v.errorf(p, "the combination of port %d, protocol %s and hostname %q is already used by spec.listeners[%d]; it must be unique for each listener",
				l.Port, l.Protocol, host, first)
		} else {
			combos[k] = i
		}
		switch l.Protocol {
		case gwv1.HTTPProtocolType, gwv1.TCPProtocolType, gwv1.UDPProtocolType:
			if l.TLS != nil {
				v.errorf(p+".tls", "must not be set for protocol %s", l.Protocol)
			}
		case gwv1.HTTPSProtocolType:
			if l.TLS == nil {
				v.errorf(p+".tls", "required for protocol HTTPS")
			}
		}
		if t := l.TLS; t != nil {
			mode := gwv1.TLSModeTerminate
			if t.Mode != nil {
				mode = *t.Mode
			}
			switch mode {
			case gwv1.TLSModeTerminate:
				if len(t.CertificateRefs) == 0 && len(t.Options) == 0 {
					v.errorf(p+".tls.certificateRefs", "certificateRefs or options must be specified when mode is Terminate")
				}
			case gwv1.TLSModePassthrough:
			default:
				v.errorf(p+".tls.mode", "%q is not a TLS mode; use Terminate or Passthrough", mode)
			}
			if len(t.CertificateRefs) > 64 {
				v.errorf(p+".tls.certificateRefs", "%d certificate references; at most 64 are allowed", len(t.CertificateRefs))
			}
			for j, ref := range t.CertificateRefs {
				rp := idx(p+".tls.certificateRefs", j)
				if ref.Name == "" {
					v.errorf(rp+".name", "required")
				}
				if ref.Group != nil {
					v.gwGroup(rp+".group", *ref.Group)
				}
				if ref.Kind != nil {
					v.gwKind(rp+".kind", *ref.Kind)
				}
			}
		}
		if ar := l.AllowedRoutes; ar != nil {
			if ns := ar.Namespaces; ns != nil && ns.From != nil {
				switch *ns.From {
				case gwv1.NamespacesFromAll, gwv1.NamespacesFromSame, gwv1.NamespacesFromNone:
				case gwv1.NamespacesFromSelector:
					if ns.Selector == nil {
						v.errorf(p+".allowedRoutes.namespaces.selector", "required when from is Selector")
					}
				default:
					v.errorf(p+".allowedRoutes.namespaces.from", "%q is not one of All, Same, Selector, None", *ns.From)
				}
				if ns.Selector != nil {
					v.labels(p+".allowedRoutes.namespaces.selector.matchLabels", ns.Selector.MatchLabels)
					for j, e := range ns.Selector.MatchExpressions {
						ep := idx(p+".allowedRoutes.namespaces.selector.matchExpressions", j)
						switch e.Operator {
						case "In", "NotIn":
							if len(e.Values) == 0 {
								v.errorf(ep+".values", "required for operator %s", e.Operator)
							}
						case "Exists", "DoesNotExist":
							if len(e.Values) > 0 {
								v.errorf(ep+".values", "must be empty for operator %s", e.Operator)
							}
						default:
							v.errorf(ep+".operator", "%q is not one of In, NotIn, Exists, DoesNotExist", e.Operator)
						}
					}
				}
			}
			for j, k := range ar.Kinds {
				kp := idx(p+".allowedRoutes.kinds", j)
				v.gwKind(kp+".kind", k.Kind)
				if k.Group != nil {
					v.gwGroup(kp+".group", *k.Group)
				}
			}
		}
	}
	for i, a := range gw.Addresses {
		if a.Value == "" {
			v.errorf(idx("spec.addresses", i)+".value", "required")
		}
	}
}

func (v *validator) gwHTTPRoute(r *gwv1.HTTPRouteSpec) {
	v.commonRoute(r.CommonRouteSpec)
	v.routeHostnames(r.Hostnames)
	if len(r.Rules) > 16 {
		v.errorf("spec.rules", "%d rules; at most 16 are allowed", len(r.Rules))
	}
	ruleNames := map[gwv1.SectionName]int{}
	for i, rule := range r.Rules {
		p := idx("spec.rules", i)
		if rule.Name != nil {
			v.sectionName(p+".name", *rule.Name)
			if first, dup := ruleNames[*rule.Name]; dup {
				v.errorf(p+".name", "duplicate rule name %q (also spec.rules[%d]); rule names must be unique within the route", *rule.Name, first)
			} else {
				ruleNames[*rule.Name] = i
			}
		}
		if len(rule.Matches) > 64 {
			v.errorf(p+".matches", "%d matches; at most 64 are allowed", len(rule.Matches))
		}
		for j, m := range rule.Matches {
			v.httpRouteMatch(idx(p+".matches", j), m)
		}
		v.httpFilters(p+".filters", rule.Filters, rule.Matches)
		for j, b := range rule.BackendRefs {
			bp := idx(p+".backendRefs", j)
			v.backendRef(bp, b.BackendRef)
			v.httpFilters(bp+".filters", b.Filters, rule.Matches)
		}
		if t := rule.Timeouts; t != nil {
			var req, be time.Duration
			var reqOK, beOK bool
			if t.Request != nil {
				req, reqOK = v.gwDuration(p+".timeouts.request", *t.Request)
			}
			if t.BackendRequest != nil {
				be, beOK = v.gwDuration(p+".timeouts.backendRequest", *t.BackendRequest)
			}
			if reqOK && beOK && req != 0 && (be == 0 || be > req) {
				v.errorf(p+".timeouts.backendRequest", "backendRequest timeout cannot be longer than request timeout")
			}
		}
		if rt := rule.Retry; rt != nil {
			if rt.Attempts != nil && *rt.Attempts < 0 {
				v.errorf(p+".retry.attempts", "must not be negative")
			}
			for j, c := range rt.Codes {
				if c < 400 || c > 599 {
					v.errorf(idx(p+".retry.codes", j), "%d is not a status code from 400 to 599", c)
				}
			}
			if rt.Backoff != nil {
				v.gwDuration(p+".retry.backoff", *rt.Backoff)
			}
		}
	}
}

func (v *validator) httpRouteMatch(p string, m gwv1.HTTPRouteMatch) {
	if pm := m.Path; pm != nil {
		typ := gwv1.PathMatchPathPrefix
		if pm.Type != nil {
			typ = *pm.Type
		}
		value := "/"
		if pm.Value != nil {
			value = *pm.Value
		}
		switch typ {
		case gwv1.PathMatchExact, gwv1.PathMatchPathPrefix:
			switch {
			case !strings.HasPrefix(value, "/"):
				v.errorf(p+".path.value", "%q must be an absolute path (start with '/')", value)
			case gwBadPathRe.MatchString(value):
				v.errorf(p+".path.value", "%q must not contain '//', '/./', '/../', '%%2f', '#', or end in '/.' or '/..'", value)
			}
			if len(value) > 1024 {
				v.errorf(p+".path.value", "at most 1024 characters")
			}
		case gwv1.PathMatchRegularExpression:
			v.check(p+".path.value", validateRegex(value))
		default:
			v.errorf(p+".path.type", "%q is not one of Exact, PathPrefix, RegularExpression", typ)
		}
	}
	seen := map[string]int{}
	for i, h := range m.Headers {
		hp := idx(p+".headers", i)
		v.gwHeaderName(hp+".name", string(h.Name))
		key := strings.ToLower(string(h.Name))
		if first, dup := seen[key]; dup {
			v.errorf(hp+".name", "duplicate header name %q (also headers[%d]); header names must be unique within a match", h.Name, first)
		} else {
			seen[key] = i
		}
		v.stringMatchType(hp, h.Type, h.Value, gwv1.HeaderMatchExact, gwv1.HeaderMatchRegularExpression)
	}
	seenQ := map[string]int{}
	for i, q := range m.QueryParams {
		qp := idx(p+".queryParams", i)
		v.gwHeaderName(qp+".name", string(q.Name))
		if first, dup := seenQ[string(q.Name)]; dup {
			v.errorf(qp+".name", "duplicate query parameter %q (also queryParams[%d]); names must be unique within a match", q.Name, first)
		} else {
			seenQ[string(q.Name)] = i
		}
		var typ *gwv1.HeaderMatchType
		if q.Type != nil {
			t := gwv1.HeaderMatchType(*q.Type)
			typ = &t
		}
		v.stringMatchType(qp, typ, q.Value, gwv1.HeaderMatchExact, gwv1.HeaderMatchRegularExpression)
	}
	if m.Method != nil && !gwValidHTTPMethods[*m.Method] {
		v.errorf(p+".method", "%q is not one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH", *m.Method)
	}
}

func (v *validator) stringMatchType(p string, typ *gwv1.HeaderMatchType, value string, exact, regex gwv1.HeaderMatchType) {
	t := exact
	if typ != nil {
		t = *typ
	}
	switch t {
	case exact:
		if value == "" {
			v.errorf(p+".value", "required")
		}
		if len(value) > 4096 {
			v.errorf(p+".value", "at most 4096 characters")
		}
	case regex:
		v.check(p+".value", validateRegex(value))
	default:
		v.errorf(p+".type", "%q is not one of %s, %s", t, exact, regex)
	}
}

// httpFilters checks a rule's (or a backendRef's) filters: each carries
// exactly the field its type names; RequestRedirect and URLRewrite do not
// mix; only RequestMirror and ExtensionRef may repeat.
func (v *validator) httpFilters(p string, filters []gwv1.HTTPRouteFilter, matches []gwv1.HTTPRouteMatch) {
	if len(filters) > 16 {
		v.errorf(p, "%d filters; at most 16 are allowed", len(filters))
	}
	count := map[gwv1.HTTPRouteFilterType]int{}
	for i, f := range filters {
		fp := idx(p, i)
		count[f.Type]++
		set := map[gwv1.HTTPRouteFilterType]bool{
			gwv1.HTTPRouteFilterRequestHeaderModifier:  f.RequestHeaderModifier != nil,
			gwv1.HTTPRouteFilterResponseHeaderModifier: f.ResponseHeaderModifier != nil,
			gwv1.HTTPRouteFilterRequestMirror:          f.RequestMirror != nil,
			gwv1.HTTPRouteFilterRequestRedirect:        f.RequestRedirect != nil,
			gwv1.HTTPRouteFilterURLRewrite:             f.URLRewrite != nil,
			gwv1.HTTPRouteFilterCORS:                   f.CORS != nil,
			gwv1.HTTPRouteFilterExternalAuth:           f.ExternalAuth != nil,
			gwv1.HTTPRouteFilterExtensionRef:           f.ExtensionRef != nil,
		}
		field := map[gwv1.HTTPRouteFilterType]string{
			gwv1.HTTPRouteFilterRequestHeaderModifier: "requestHeaderModifier", gwv1.HTTPRouteFilterResponseHeaderModifier: "responseHeaderModifier",
			gwv1.HTTPRouteFilterRequestMirror: "requestMirror", gwv1.HTTPRouteFilterRequestRedirect: "requestRedirect",
			gwv1.HTTPRouteFilterURLRewrite: "urlRewrite", gwv1.HTTPRouteFilterCORS: "cors",
			gwv1.HTTPRouteFilterExternalAuth: "externalAuth", gwv1.HTTPRouteFilterExtensionRef: "extensionRef",
		}
		if _, known := set[f.Type]; !known {
			v.errorf(fp+".type", "%q is not a filter type (RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, RequestRedirect, URLRewrite, CORS, ExternalAuth, ExtensionRef)", f.Type)
			continue
		}
		for t, isSet := range set {
			switch {
			case t == f.Type && !isSet:
				v.errorf(fp+"."+field[t], "required for filter type %s", t)
			case t != f.Type && isSet:
				v.errorf(fp+"."+field[t], "must not be set for filter type %s", f.Type)
			}
		}
		switch f.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			v.headerFilter(fp+".requestHeaderModifier", f.RequestHeaderModifier)
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			v.headerFilter(fp+".responseHeaderModifier", f.ResponseHeaderModifier)
		case gwv1.HTTPRouteFilterRequestRedirect:
			if r := f.RequestRedirect; r != nil {
				rp := fp + ".requestRedirect"
				if r.Scheme != nil && *r.Scheme != "http" && *r.Scheme != "https" {
					v.errorf(rp+".scheme", "%q is not one of http, https", *r.Scheme)
				}
				if r.Hostname != nil {
					v.gwPreciseHostname(rp+".hostname", string(*r.Hostname))
				}
				if r.Port != nil {
					v.gwPort(rp+".port", *r.Port)
				}
				if r.StatusCode != nil {
					switch *r.StatusCode {
					case 301, 302, 303, 307, 308:
					default:
						v.errorf(rp+".statusCode", "%d is not one of 301, 302, 303, 307, 308", *r.StatusCode)
					}
				}
				v.pathModifier(rp+".path", r.Path, matches)
			}
		case gwv1.HTTPRouteFilterURLRewrite:
			if r := f.URLRewrite; r != nil {
				if r.Hostname != nil {
					v.gwPreciseHostname(fp+".urlRewrite.hostname", string(*r.Hostname))
				}
				v.pathModifier(fp+".urlRewrite.path", r.Path, matches)
			}
		case gwv1.HTTPRouteFilterRequestMirror:
			if m := f.RequestMirror; m != nil {
				mp := fp + ".requestMirror"
				v.backendObjectRef(mp+".backendRef", m.BackendRef)
				if m.Percent != nil && m.Fraction != nil {
					v.errorf(mp, "only one of percent or fraction may be specified")
				}
				if m.Percent != nil && (*m.Percent < 0 || *m.Percent > 100) {
					v.errorf(mp+".percent", "%d is not from 0 to 100", *m.Percent)
				}
				if fr := m.Fraction; fr != nil {
					den := int32(100)
					if fr.Denominator != nil {
						den = *fr.Denominator
					}
					if fr.Numerator < 0 || den < 1 || fr.Numerator > den {
						v.errorf(mp+".fraction", "numerator %d must be from 0 to the denominator %d (at least 1)", fr.Numerator, den)
					}
				}
			}
		case gwv1.HTTPRouteFilterExtensionRef:
			if e := f.ExtensionRef; e != nil {
				if e.Name == "" {
					v.errorf(fp+".extensionRef.name", "required")
				}
				v.gwKind(fp+".extensionRef.kind", e.Kind)
			}
		}
	}
	for _, t := range []gwv1.HTTPRouteFilterType{gwv1.HTTPRouteFilterRequestHeaderModifier, gwv1.HTTPRouteFilterResponseHeaderModifier,
		gwv1.HTTPRouteFilterRequestRedirect, gwv1.HTTPRouteFilterURLRewrite, gwv1.HTTPRouteFilterCORS, gwv1.HTTPRouteFilterExternalAuth} {
		if count[t] > 1 {
			v.errorf(p, "filter type %s appears %d times; it may be used at most once", t, count[t])
		}
	}
	if count[gwv1.HTTPRouteFilterRequestRedirect] > 0 && count[gwv1.HTTPRouteFilterURLRewrite] > 0 {
		v.errorf(p, "RequestRedirect and URLRewrite filters cannot be used together")
	}
}

func (v *validator) headerFilter(p string, h *gwv1.HTTPHeaderFilter) {
	if h == nil {
		return
	}
	check := func(list []gwv1.HTTPHeader, field string) {
		seen := map[string]int{}
		for i, e := range list {
			ep := idx(p+"."+field, i)
			v.gwHeaderName(ep+".name", string(e.Name))
			k := strings.ToLower(string(e.Name))
			if first, dup := seen[k]; dup {
				v.errorf(ep+".name", "duplicate header %q (also %s[%d])", e.Name, field, first)
			} else {
				seen[k] = i
			}
			v.check(ep+".value", validateHeaderValue(e.Value))
		}
	}
	check(h.Set, "set")
	check(h.Add, "add")
	seen := map[string]int{}
	for i, n := range h.Remove {
		rp := idx(p+".remove", i)
		v.gwHeaderName(rp, n)
		k := strings.ToLower(n)
		if first, dup := seen[k]; dup {
			v.errorf(rp, "duplicate header %q (also remove[%d])", n, first)
		} else {
			seen[k] = i
		}
	}
}

func (v *validator) pathModifier(p string, m *gwv1.HTTPPathModifier, matches []gwv1.HTTPRouteMatch) {
	if m == nil {
		return
	}
	switch m.Type {
	case gwv1.FullPathHTTPPathModifier:
		if m.ReplaceFullPath == nil {
			v.errorf(p+".replaceFullPath", "required when type is ReplaceFullPath")
		}
		if m.ReplacePrefixMatch != nil {
			v.errorf(p+".replacePrefixMatch", "must not be set when type is ReplaceFullPath")
		}
	case gwv1.PrefixMatchHTTPPathModifier:
		if m.ReplacePrefixMatch == nil {
			v.errorf(p+".replacePrefixMatch", "required when type is ReplacePrefixMatch")
		}
		if m.ReplaceFullPath != nil {
			v.errorf(p+".replaceFullPath", "must not be set when type is ReplacePrefixMatch")
		}
		prefixes := 0
		for _, mt := range matches {
			if mt.Path != nil && (mt.Path.Type == nil || *mt.Path.Type == gwv1.PathMatchPathPrefix) {
				prefixes++
			}
		}
		if len(matches) != 1 || prefixes != 1 {
			v.errorf(p+".replacePrefixMatch", "exactly one PathPrefix match must be specified to use replacePrefixMatch")
		}
	default:
		v.errorf(p+".type", "%q is not one of ReplaceFullPath, ReplacePrefixMatch", m.Type)
	}
	for _, s := range []*string{m.ReplaceFullPath, m.ReplacePrefixMatch} {
		if s != nil && *s != "" && !strings.HasPrefix(*s, "/") {
			v.errorf(p, "%q must be an absolute path (start with '/')", *s)
		}
	}
}

func (v *validator) gwGRPCRoute(r *gwv1.GRPCRouteSpec) {
	v.commonRoute(r.CommonRouteSpec)
	v.routeHostnames(r.Hostnames)
	if len(r.Rules) > 16 {
		v.errorf("spec.rules", "%d rules; at most 16 are allowed", len(r.Rules))
	}
	for i, rule := range r.Rules {
		p := idx("spec.rules", i)
		if rule.Name != nil {
			v.sectionName(p+".name", *rule.Name)
		}
		for j, m := range rule.Matches {
			mp := idx(p+".matches", j)
			if mm := m.Method; mm != nil {
				typ := gwv1.GRPCMethodMatchExact
				if mm.Type != nil {
					typ = *mm.Type
				}
				switch typ {
				case gwv1.GRPCMethodMatchExact:
					if mm.Service == nil && mm.Method == nil {
						v.errorf(mp+".method", "one or both of service or method must be specified")
					}
					if mm.Service != nil && !gwGRPCServiceRe.MatchString(*mm.Service) {
						v.errorf(mp+".method.service", "%q is not a gRPC service name", *mm.Service)
					}
					if mm.Method != nil && !gwGRPCMethodRe.MatchString(*mm.Method) {
						v.errorf(mp+".method.method", "%q is not a gRPC method name", *mm.Method)
					}
				case gwv1.GRPCMethodMatchRegularExpression:
					if mm.Service != nil {
						v.check(mp+".method.service", validateRegex(*mm.Service))
					}
					if mm.Method != nil {
						v.check(mp+".method.method", validateRegex(*mm.Method))
					}
				default:
					v.errorf(mp+".method.type", "%q is not one of Exact, RegularExpression", typ)
				}
			}
			for k, h := range m.Headers {
				hp := idx(mp+".headers", k)
				v.gwHeaderName(hp+".name", string(h.Name))
				var t *gwv1.HeaderMatchType
				if h.Type != nil {
					x := gwv1.HeaderMatchType(*h.Type)
					t = &x
				}
				v.stringMatchType(hp, t, h.Value, gwv1.HeaderMatchExact, gwv1.HeaderMatchRegularExpression)
			}
		}
		for j, f := range rule.Filters {
			fp := idx(p+".filters", j)
			switch f.Type {
			case gwv1.GRPCRouteFilterRequestHeaderModifier:
				if f.RequestHeaderModifier == nil {
					v.errorf(fp+".requestHeaderModifier", "required for filter type %s", f.Type)
				}
				v.headerFilter(fp+".requestHeaderModifier", f.RequestHeaderModifier)
			case gwv1.GRPCRouteFilterResponseHeaderModifier:
				if f.ResponseHeaderModifier == nil {
					v.errorf(fp+".responseHeaderModifier", "required for filter type %s", f.Type)
				}
				v.headerFilter(fp+".responseHeaderModifier", f.ResponseHeaderModifier)
			case gwv1.GRPCRouteFilterRequestMirror:
				if f.RequestMirror == nil {
					v.errorf(fp+".requestMirror", "required for filter type %s", f.Type)
				} else {
					v.backendObjectRef(fp+".requestMirror.backendRef", f.RequestMirror.BackendRef)
				}
			case gwv1.GRPCRouteFilterExtensionRef:
				if f.ExtensionRef == nil {
					v.errorf(fp+".extensionRef", "required for filter type %s", f.Type)
				}
			default:
				v.errorf(fp+".type", "%q is not one of RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef", f.Type)
			}
		}
		for j, b := range rule.BackendRefs {
			v.backendRef(idx(p+".backendRefs", j), b.BackendRef)
		}
	}
}

func (v *validator) gwTCPRoute(r *gwv1.TCPRouteSpec) {
	v.commonRoute(r.CommonRouteSpec)
	v.l4Rules(len(r.Rules), func(i int) []gwv1.BackendRef { return r.Rules[i].BackendRefs })
}

func (v *validator) gwTLSRoute(r *gwv1.TLSRouteSpec) {
	v.commonRoute(r.CommonRouteSpec)
	v.routeHostnames(r.Hostnames)
	v.l4Rules(len(r.Rules), func(i int) []gwv1.BackendRef { return r.Rules[i].BackendRefs })
}

func (v *validator) l4Rules(n int, refs func(int) []gwv1.BackendRef) {
	switch {
	case n == 0:
		v.errorf("spec.rules", "required: at least one rule")
	case n > 16:
		v.errorf("spec.rules", "%d rules; at most 16 are allowed", n)
	}
	for i := 0; i < n; i++ {
		p := idx("spec.rules", i)
		if len(refs(i)) == 0 {
			v.errorf(p+".backendRefs", "required: at least one backendRef")
		}
		for j, b := range refs(i) {
			v.backendRef(idx(p+".backendRefs", j), b)
		}
	}
}

func (v *validator) referenceGrant(g *gwv1.ReferenceGrantSpec) {
	if len(g.From) == 0 {
		v.errorf("spec.from", "required: at least one entry")
	}
	if len(g.To) == 0 {
		v.errorf("spec.to", "required: at least one entry")
	}
	for i, f := range g.From {
		p := idx("spec.from", i)
		v.gwGroup(p+".group", f.Group)
		v.gwKind(p+".kind", f.Kind)
		if f.Namespace == "" {
			v.errorf(p+".namespace", "required")
		}
	}
	for i, t := range g.To {
		p := idx("spec.to", i)
		v.gwGroup(p+".group", t.Group)
		v.gwKind(p+".kind", t.Kind)
	}
}

func (v *validator) namespace(*corev1.Namespace) {}

// Shared parts.

func (v *validator) commonRoute(c gwv1.CommonRouteSpec) {
	if len(c.ParentRefs) > 32 {
		v.errorf("spec.parentRefs", "%d parent references; at most 32 are allowed", len(c.ParentRefs))
	}
	for i, ref := range c.ParentRefs {
		p := idx("spec.parentRefs", i)
		if ref.Name == "" {
			v.errorf(p+".name", "required")
		}
		if ref.Group != nil {
			v.gwGroup(p+".group", *ref.Group)
		}
		if ref.Kind != nil {
			v.gwKind(p+".kind", *ref.Kind)
		}
		if ref.SectionName != nil {
			v.sectionName(p+".sectionName", *ref.SectionName)
		}
		if ref.Port != nil {
			v.gwPort(p+".port", *ref.Port)
		}
	}
}

func (v *validator) routeHostnames(hosts []gwv1.Hostname) {
	if len(hosts) > 16 {
		v.errorf("spec.hostnames", "%d hostnames; at most 16 are allowed", len(hosts))
	}
	for i, h := range hosts {
		v.gwHostname(idx("spec.hostnames", i), h)
	}
}

func (v *validator) backendRef(p string, b gwv1.BackendRef) {
	v.backendObjectRef(p, b.BackendObjectReference)
	if b.Weight != nil && (*b.Weight < 0 || *b.Weight > 1000000) {
		v.errorf(p+".weight", "%d is not from 0 to 1000000", *b.Weight)
	}
}

func (v *validator) backendObjectRef(p string, b gwv1.BackendObjectReference) {
	if b.Name == "" {
		v.errorf(p+".name", "required")
	}
	if b.Group != nil {
		v.gwGroup(p+".group", *b.Group)
	}
	if b.Kind != nil {
		v.gwKind(p+".kind", *b.Kind)
	}
	if b.Port != nil {
		v.gwPort(p+".port", *b.Port)
	}
	// "Must have port for Service reference" (CEL).
	isService := (b.Group == nil || *b.Group == "") && (b.Kind == nil || *b.Kind == "Service")
	if isService && b.Port == nil {
		v.errorf(p+".port", "required when the backend is a Service")
	}
}

func (v *validator) sectionName(f string, n gwv1.SectionName) {
	switch {
	case n == "":
		v.errorf(f, "required")
	case len(n) > 253 || !gwSectionNameRe.MatchString(string(n)):
		v.errorf(f, "%q is not a valid name (lower case letters, digits, '-' and '.')", n)
	}
}

func (v *validator) gwHostname(f string, h gwv1.Hostname) {
	if len(h) > 253 || !gwHostnameRe.MatchString(string(h)) {
		v.errorf(f, "%q is not a valid hostname (lower case DNS name, optionally starting with \"*.\"; no IP addresses)", h)
		return
	}
	if isIPAddress(string(h)) {
		v.errorf(f, "%q: IP addresses are not allowed as hostnames", h)
	}
}

func (v *validator) gwPreciseHostname(f, h string) {
	if len(h) > 253 || !gwPreciseHostRe.MatchString(h) {
		v.errorf(f, "%q is not a valid hostname (lower case DNS name, no wildcard)", h)
	}
}

func (v *validator) gwPort(f string, port int32) {
	if port < 1 || port > 65535 {
		v.errorf(f, "%d is not a port from 1 to 65535", port)
	}
}

func (v *validator) gwGroup(f string, g gwv1.Group) {
	if len(g) > 253 || !gwGroupRe.MatchString(string(g)) {
		v.errorf(f, "%q is not a valid API group", g)
	}
}

func (v *validator) gwKind(f string, k gwv1.Kind) {
	if k == "" || len(k) > 63 || !gwKindRe.MatchString(string(k)) {
		v.errorf(f, "%q is not a valid kind", k)
	}
}

func (v *validator) gwHeaderName(f, name string) {
	if name == "" || len(name) > 256 || !gwHeaderNameRe.MatchString(name) {
		v.errorf(f, "%q is not a valid header name", name)
	}
}

// gwDuration parses a Gateway API duration (GEP-2257: 1 to 4 groups of
// number and unit h, m, s or ms).
func (v *validator) gwDuration(f string, d gwv1.Duration) (time.Duration, bool) {
	if !gwDurationRe.MatchString(string(d)) {
		v.errorf(f, "%q is not a Gateway API duration (such as 500ms, 10s, 1h30m)", d)
		return 0, false
	}
	dur, err := time.ParseDuration(string(d))
	if err != nil {
		v.errorf(f, "%q: %v", d, err)
		return 0, false
	}
	return dur, true
}

// ParseGatewayDuration parses a Gateway API duration.
func ParseGatewayDuration(d gwv1.Duration) (time.Duration, error) {
	if !gwDurationRe.MatchString(string(d)) {
		return 0, fmt.Errorf("%q is not a Gateway API duration", d)
	}
	return time.ParseDuration(string(d))
}
