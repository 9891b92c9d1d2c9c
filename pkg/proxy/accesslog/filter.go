package accesslog

import (
	"fmt"
	"net/http"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog/celfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// entryFilter decides per entry whether a line is written.
type entryFilter interface {
	match(e *Entry) bool
}

// compileFilter compiles an access log's filter: Envoy's CEL extension
// filter (ExpressionFilter, which Istio generates from a Telemetry
// filter.expression), the response flag filter (Istio's listener access
// log keeps NR connections only: pilot/pkg/networking/core/accesslog.go
// listenerAccessLogFilter) and an and_filter of those (Istio's
// buildAccessLogFilter, when a Telemetry filter joins it). Any other
// filter, and a cel_config, is an error naming it.
func compileFilter(f *accesslogv3.AccessLogFilter) (entryFilter, error) {
	switch {
	case f.GetResponseFlagFilter() != nil:
		return compileFlagFilter(f.GetResponseFlagFilter())
	case f.GetAndFilter() != nil:
		var and andFilter
		for i, sub := range f.GetAndFilter().GetFilters() {
			m, err := compileFilter(sub)
			if err != nil {
				return nil, fmt.Errorf("and_filter.filters[%d]: %w", i, err)
			}
			and = append(and, m)
		}
		return and, nil
	}
	ext := f.GetExtensionFilter()
	if ext == nil {
		return nil, fmt.Errorf("filter: only the extension filter %s, response_flag_filter and and_filter are supported", celfilter.Name)
	}
	tc := ext.GetTypedConfig()
	var ef celv3.ExpressionFilter
	if tc == nil || tc.UnmarshalTo(&ef) != nil {
		return nil, fmt.Errorf("filter.extension_filter %q: only %s is supported", ext.GetName(), celfilter.TypeURL)
	}
	if err := ef.ValidateAll(); err != nil {
		return nil, fmt.Errorf("filter.extension_filter: %w", err)
	}
	if ef.GetCelConfig() != nil {
		return nil, fmt.Errorf("filter.extension_filter.cel_config: not supported")
	}
	cf, err := celfilter.Compile(ef.GetExpression())
	if err != nil {
		return nil, fmt.Errorf("filter.extension_filter.expression: %w", err)
	}
	return celEntryFilter{cf}, nil
}

// compileFlagFilter is Envoy's ResponseFlagFilter
// (source/common/access_log/access_log_impl.cc): an entry with any of
// the flags passes; with no flags listed, an entry with any flag. A flag
// this proxy never sets is an error naming it, rather than a filter that
// can never pass.
func compileFlagFilter(rf *accesslogv3.ResponseFlagFilter) (entryFilter, error) {
	var want httpfilter.Flags
next:
	for _, name := range rf.GetFlags() {
		for i := 0; i < httpfilter.NumFlags; i++ {
			if httpfilter.FlagName(i) == name {
				want |= 1 << i
				continue next
			}
		}
		return nil, fmt.Errorf("response_flag_filter: flag %q is not one this proxy sets", name)
	}
	return flagFilter(want), nil
}

// OnlyFlagged reports whether l writes only entries carrying one of the
// flags f: its filter is a response flag filter naming no other flag, or
// an and_filter with one. A listener's access log must be (see
// dataplane.Listener.AccessLog).
func (l *Logger) OnlyFlagged(f httpfilter.Flags) bool { return onlyFlagged(l.filter, f) }

func onlyFlagged(ef entryFilter, f httpfilter.Flags) bool {
	switch x := ef.(type) {
	case flagFilter:
		return x != 0 && httpfilter.Flags(x)&^f == 0
	case andFilter:
		for _, sub := range x {
			if onlyFlagged(sub, f) {
				return true
			}
		}
	}
	return false
}

type celEntryFilter struct{ f *celfilter.Filter }

func (c celEntryFilter) match(e *Entry) bool { return c.f.Match((*entrySource)(e)) }

// flagFilter passes an entry with one of its flags (0: with any flag).
type flagFilter httpfilter.Flags

func (f flagFilter) match(e *Entry) bool {
	if e.Info == nil {
		return false
	}
	if f == 0 {
		return e.Info.Flags != 0
	}
	return e.Info.Flags&httpfilter.Flags(f) != 0
}

// andFilter passes an entry every one of its filters passes.
type andFilter []entryFilter

func (a andFilter) match(e *Entry) bool {
	for _, f := range a {
		if !f.match(e) {
			return false
		}
	}
	return true
}

// entrySource is an Entry as the CEL filter reads it: Envoy's attributes
// of the request (request.*, response.* are absent for TCP connections).
type entrySource Entry

var _ celfilter.Source = (*entrySource)(nil)

func (s *entrySource) Attr(a celfilter.Attr) (celfilter.Value, bool) {
	if v, ok := s.connAttr(a); ok {
		return v, true
	}
	r, info := s.Req, s.Info
	if r == nil {
		return celfilter.Value{}, false
	}
	str := func(v string) (celfilter.Value, bool) { return celfilter.Value{Str: v}, true }
	hdr := func(name string) (celfilter.Value, bool) {
		v := r.Header.Values(name)
		if len(v) == 0 {
			return celfilter.Value{}, false
		}
		return str(v[0])
	}
	switch a {
	case celfilter.RequestPath:
		if r.URL == nil {
			return celfilter.Value{}, false
		}
		return str(r.URL.RequestURI())
	case celfilter.RequestURLPath:
		if r.URL == nil {
			return celfilter.Value{}, false
		}
		return str(r.URL.EscapedPath())
	case celfilter.RequestHost:
		return str(r.Host)
	case celfilter.RequestScheme:
		if r.TLS != nil {
			return str("https")
		}
		return str("http")
	case celfilter.RequestMethod:
		return str(r.Method)
	case celfilter.RequestUserAgent:
		return hdr("User-Agent")
	case celfilter.RequestID:
		return hdr("X-Request-Id")
	case celfilter.RequestReferer:
		return hdr("Referer")
	case celfilter.RequestProtocol:
		if r.ProtoMajor == 2 {
			return str("HTTP/2")
		}
		return str(r.Proto)
	case celfilter.RequestQuery:
		if r.URL == nil {
			return celfilter.Value{}, false
		}
		return str(r.URL.RawQuery)
	case celfilter.ResponseCode:
		return celfilter.Value{Int: int64(info.Status)}, true
	case celfilter.ResponseSize:
		return celfilter.Value{Int: int64(info.BytesSent)}, true
	}
	return celfilter.Value{}, false
}

// connAttr are the attributes TCP connections have too.
func (s *entrySource) connAttr(a celfilter.Attr) (celfilter.Value, bool) {
	info, c := s.Info, s.Conn
	switch a {
	case celfilter.ResponseFlags:
		return celfilter.Value{Int: int64(info.Flags)}, true
	case celfilter.ResponseCodeDetails:
		return celfilter.Value{Str: info.Details}, info.Details != ""
	case celfilter.UpstreamAddress:
		return celfilter.Value{Str: info.Upstream}, info.Upstream != ""
	case celfilter.XDSClusterName:
		return celfilter.Value{Str: info.Cluster}, info.Cluster != ""
	case celfilter.XDSRouteName:
		return celfilter.Value{Str: info.Route}, info.Route != ""
	}
	if c == nil {
		return celfilter.Value{}, false
	}
	switch a {
	case celfilter.ConnectionMTLS:
		return celfilter.Value{Bool: c.PeerPrincipal != "" || c.TLS != nil && len(c.TLS.PeerCertificates) > 0}, true
	case celfilter.ConnectionRequestedServerName:
		return celfilter.Value{Str: c.ServerName}, true
	case celfilter.SourceAddress:
		return celfilter.Value{Str: c.RemoteAddr.String()}, c.RemoteAddr.IsValid()
	case celfilter.SourcePort:
		return celfilter.Value{Int: int64(c.RemoteAddr.Port())}, c.RemoteAddr.IsValid()
	case celfilter.DestinationAddress:
		return celfilter.Value{Str: c.LocalAddr.String()}, c.LocalAddr.IsValid()
	case celfilter.DestinationPort:
		return celfilter.Value{Int: int64(c.LocalAddr.Port())}, c.LocalAddr.IsValid()
	}
	return celfilter.Value{}, false
}

// Header is request.headers[name] or response.headers[name]; the
// request's pseudo headers (:method, :authority, :path, :scheme) read the
// request line, as Envoy's header map holds them.
func (s *entrySource) Header(response bool, name string) (string, bool) {
	var h http.Header
	if response {
		h = s.RespHeader
	} else if s.Req != nil {
		if name != "" && name[0] == ':' {
			b, ok := appendReqOne(nil, name, s.Req)
			return string(b), ok
		}
		h = s.Req.Header
	}
	if h == nil {
		return "", false
	}
	v := h.Values(name)
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}
