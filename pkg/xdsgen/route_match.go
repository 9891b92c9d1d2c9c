package xdsgen

import (
	"maps"
	"slices"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// translateMatch turns one Istio match block into an Envoy route match.
// Everything inside a block must hold (AND). A nil block matches all.
func translateMatch(m *networking.HTTPMatchRequest) *route.RouteMatch {
	rm := &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return rm
	}
	switch u := m.Uri.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		rm.PathSpecifier = &route.RouteMatch_Path{Path: u.Exact}
	case *networking.StringMatch_Prefix:
		rm.PathSpecifier = &route.RouteMatch_Prefix{Prefix: u.Prefix}
	case *networking.StringMatch_Regex:
		rm.PathSpecifier = &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: u.Regex}}
	}
	if m.IgnoreUriCase {
		rm.CaseSensitive = wrapBool(false)
	}
	for _, name := range slices.Sorted(maps.Keys(m.Headers)) {
		rm.Headers = append(rm.Headers, headerMatcher(name, m.Headers[name], false))
	}
	for _, name := range slices.Sorted(maps.Keys(m.WithoutHeaders)) {
		rm.Headers = append(rm.Headers, headerMatcher(name, m.WithoutHeaders[name], true))
	}
	if m.Scheme != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":scheme", m.Scheme, false))
	}
	if m.Method != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":method", m.Method, false))
	}
	if m.Authority != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":authority", m.Authority, false))
	}
	for _, name := range slices.Sorted(maps.Keys(m.QueryParams)) {
		qm := &route.QueryParameterMatcher{Name: name}
		if sm := stringMatcher(m.QueryParams[name]); sm != nil {
			qm.QueryParameterMatchSpecifier = &route.QueryParameterMatcher_StringMatch{StringMatch: sm}
		} else {
			qm.QueryParameterMatchSpecifier = &route.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	return rm
}

// headerMatcher matches one header; an empty StringMatch means "present".
func headerMatcher(name string, sm *networking.StringMatch, invert bool) *route.HeaderMatcher {
	hm := &route.HeaderMatcher{Name: strings.ToLower(name), InvertMatch: invert}
	if s := stringMatcher(sm); s != nil {
		hm.HeaderMatchSpecifier = &route.HeaderMatcher_StringMatch{StringMatch: s}
	} else {
		hm.HeaderMatchSpecifier = &route.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return hm
}

func stringMatcher(sm *networking.StringMatch) *matcher.StringMatcher {
	switch v := sm.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: v.Exact}}
	case *networking.StringMatch_Prefix:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: v.Prefix}}
	case *networking.StringMatch_Regex:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: v.Regex}}}
	}
	return nil
}

// mergeMatches combines a delegating route's matches with its delegate's:
// every (parent, child) pair ANDed. ok is false when no pair can ever match.
func mergeMatches(parent, child []*networking.HTTPMatchRequest) ([]*networking.HTTPMatchRequest, bool) {
	if len(parent) == 0 {
		return child, true
	}
	if len(child) == 0 {
		return parent, true
	}
	var out []*networking.HTTPMatchRequest
	for _, p := range parent {
		for _, c := range child {
			if m, ok := mergeMatch(p, c); ok {
				out = append(out, m)
			}
		}
	}
	return out, len(out) > 0
}

// mergeMatch is Istio's rule: the child's conditions win, the parent's are
// added where the child has none, and a child uri must stay inside the
// parent's uri prefix.
func mergeMatch(parent, child *networking.HTTPMatchRequest) (*networking.HTTPMatchRequest, bool) {
	out := proto.Clone(child).(*networking.HTTPMatchRequest)
	if parent.Uri != nil {
		if out.Uri == nil {
			out.Uri = parent.Uri
		} else if !uriWithin(parent.Uri, out.Uri) {
			return nil, false
		}
	}
	for _, f := range []struct {
		dst **networking.StringMatch
		src *networking.StringMatch
	}{
		{&out.Scheme, parent.Scheme}, {&out.Method, parent.Method}, {&out.Authority, parent.Authority},
	} {
		if *f.dst == nil {
			*f.dst = f.src
		}
	}
	out.Headers = mergeStringMatches(parent.Headers, out.Headers)
	out.WithoutHeaders = mergeStringMatches(parent.WithoutHeaders, out.WithoutHeaders)
	out.QueryParams = mergeStringMatches(parent.QueryParams, out.QueryParams)
	if out.Port == 0 {
		out.Port = parent.Port
	} else if parent.Port != 0 && parent.Port != out.Port {
		return nil, false
	}
	if len(out.SourceLabels) == 0 {
		out.SourceLabels = parent.SourceLabels
	}
	if len(out.Gateways) == 0 {
		out.Gateways = parent.Gateways
	}
	if out.SourceNamespace == "" {
		out.SourceNamespace = parent.SourceNamespace
	}
	if out.Name == "" {
		out.Name = parent.Name
	} else if parent.Name != "" {
		out.Name = parent.Name + "--" + out.Name
	}
	return out, true
}

func uriWithin(parent, child *networking.StringMatch) bool {
	pp := parent.GetPrefix()
	if pp == "" {
		return true // exact or regex parents cannot be checked statically; Istio keeps them
	}
	switch c := child.GetMatchType().(type) {
	case *networking.StringMatch_Prefix:
		return strings.HasPrefix(c.Prefix, pp)
	case *networking.StringMatch_Exact:
		return strings.HasPrefix(c.Exact, pp)
	}
	return true
}

func mergeStringMatches(parent, child map[string]*networking.StringMatch) map[string]*networking.StringMatch {
	if len(parent) == 0 {
		return child
	}
	out := make(map[string]*networking.StringMatch, len(parent)+len(child))
	for k, v := range parent {
		out[k] = v
	}
	for k, v := range child {
		out[k] = v
	}
	return out
}

type headerValueOption = core.HeaderValueOption

// translateHeaders turns Istio header operations into Envoy's: set
// overwrites, add appends, remove deletes.
func translateHeaders(h *networking.Headers) (reqAdd []*headerValueOption, reqRemove []string, resAdd []*headerValueOption, resRemove []string) {
	if h == nil {
		return
	}
	reqAdd, reqRemove = headerOps(h.Request)
	resAdd, resRemove = headerOps(h.Response)
	return
}

func headerOps(ops *networking.Headers_HeaderOperations) ([]*headerValueOption, []string) {
	if ops == nil {
		return nil, nil
	}
	var add []*headerValueOption
	for _, k := range slices.Sorted(maps.Keys(ops.Set)) {
		add = append(add, &core.HeaderValueOption{
			Header:       &core.HeaderValue{Key: k, Value: ops.Set[k]},
			AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, k := range slices.Sorted(maps.Keys(ops.Add)) {
		add = append(add, &core.HeaderValueOption{
			Header:       &core.HeaderValue{Key: k, Value: ops.Add[k]},
			AppendAction: core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return add, append([]string(nil), ops.Remove...)
}

var redirectCodes = map[uint32]route.RedirectAction_RedirectResponseCode{
	301: route.RedirectAction_MOVED_PERMANENTLY,
	302: route.RedirectAction_FOUND,
	303: route.RedirectAction_SEE_OTHER,
	307: route.RedirectAction_TEMPORARY_REDIRECT,
	308: route.RedirectAction_PERMANENT_REDIRECT,
}

func translateRedirect(r *networking.HTTPRedirect) *route.RedirectAction {
	ra := &route.RedirectAction{HostRedirect: r.Authority, ResponseCode: redirectCodes[r.RedirectCode]}
	if r.Uri != "" {
		ra.PathRewriteSpecifier = &route.RedirectAction_PathRedirect{PathRedirect: r.Uri}
	}
	if r.Scheme != "" {
		ra.SchemeRewriteSpecifier = &route.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	switch p := r.RedirectPort.(type) {
	case *networking.HTTPRedirect_Port:
		ra.PortRedirect = p.Port
	case *networking.HTTPRedirect_DerivePort:
		// FROM_PROTOCOL_DEFAULT: the redirect scheme's default port, which
		// Location then omits; FROM_REQUEST_PORT keeps the request's port,
		// which is what an unset port_redirect does.
		if p.DerivePort == networking.HTTPRedirect_FROM_PROTOCOL_DEFAULT {
			switch r.Scheme {
			case "https":
				ra.PortRedirect = 443
			case "http":
				ra.PortRedirect = 80
			}
		}
	}
	return ra
}

func translateDirectResponse(d *networking.HTTPDirectResponse) *route.DirectResponseAction {
	a := &route.DirectResponseAction{Status: d.Status}
	switch b := d.GetBody().GetSpecifier().(type) {
	case *networking.HTTPBody_String_:
		a.Body = &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: b.String_}}
	case *networking.HTTPBody_Bytes:
		a.Body = &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b.Bytes}}
	}
	return a
}

func regexRewrite(pattern, substitution string) *matcher.RegexMatchAndSubstitute {
	return &matcher.RegexMatchAndSubstitute{
		Pattern:      &matcher.RegexMatcher{Regex: pattern},
		Substitution: substitution,
	}
}

func wrapUint32(v uint32) *wrapperspb.UInt32Value { return wrapperspb.UInt32(v) }
