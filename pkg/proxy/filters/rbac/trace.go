package rbac

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// The evaluation API behind `sluice authz check`: the same compiled
// engines the proxy runs, walked again to say, per filter and per policy,
// what matched and what did not and why.

// JWTFilter and JWTPayloadKey are where jwt_authn puts a verified
// token's payload in the dynamic metadata (Istio's payload_in_metadata),
// which request.auth.* policies read.
const (
	JWTFilter     = "envoy.filters.http.jwt_authn"
	JWTPayloadKey = "payload"
)

// Attributes describe one request (or, for TCP, one connection) as a
// policy sees it.
type Attributes struct {
	Method, Host, Path string // Path may carry a query; it is used as normalized
	Headers            http.Header
	// SourcePrincipal is the peer's verified identity
	// (spiffe://<td>/ns/<ns>/sa/<sa>); "" for a plaintext peer.
	SourcePrincipal string
	// SourceIP is the connection's peer; DestinationIP and
	// DestinationPort where it arrived.
	SourceIP, DestinationIP netip.Addr
	DestinationPort         uint16
	// SNI is the TLS server name the peer asked for.
	SNI string
	// JWTPayload is a verified token's payload (nil: no token).
	JWTPayload map[string]any
}

// Input makes the engine's input for the attributes; tcp leaves the
// request out (a network filter judges a connection).
func (a Attributes) Input(tcp bool) Input {
	conn := &httpfilter.Conn{
		RemoteAddr:    netip.AddrPortFrom(a.SourceIP, 0),
		LocalAddr:     netip.AddrPortFrom(a.DestinationIP, a.DestinationPort),
		ServerName:    a.SNI,
		PeerPrincipal: a.SourcePrincipal,
	}
	in := Input{Conn: conn}
	if a.JWTPayload != nil {
		in.Metadata.Set(JWTFilter, JWTPayloadKey, a.JWTPayload)
	}
	if tcp {
		return in
	}
	method, path := a.Method, a.Path
	if method == "" {
		method = http.MethodGet
	}
	if path == "" {
		path = "/"
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		u = &url.URL{Path: path}
	}
	r := &http.Request{Method: method, Host: a.Host, URL: u, RequestURI: path, Header: a.Headers}
	if r.Header == nil {
		r.Header = http.Header{}
	}
	in.R, in.Path = r, trimQuery(path)
	return in
}

// NodeTrace is one permission or principal: matched or not, and why.
type NodeTrace struct {
	Matched bool   `json:"matched"`
	Why     string `json:"why"`
}

// PolicyTrace is one policy: it matches when a permission and a
// principal do.
type PolicyTrace struct {
	Name        string      `json:"name"`
	Matched     bool        `json:"matched"`
	Permissions []NodeTrace `json:"permissions"`
	Principals  []NodeTrace `json:"principals"`
}

// EngineTrace is one engine (rules or shadow_rules) evaluated.
type EngineTrace struct {
	Action   string        `json:"action"`
	Allowed  bool          `json:"allowed"`
	Policy   string        `json:"policy,omitempty"`
	Reason   string        `json:"reason"`
	Policies []PolicyTrace `json:"policies"`
}

// FilterTrace is one RBAC filter evaluated.
type FilterTrace struct {
	// Index is the filter's place in the chain's filters.
	Index  int          `json:"index"`
	Rules  *EngineTrace `json:"rules,omitempty"`
	Shadow *EngineTrace `json:"shadow,omitempty"`
	// Allowed is the filter's enforced result (shadow rules never deny).
	Allowed bool `json:"allowed"`
}

// ChainTrace is a chain's RBAC filters evaluated in order, as the proxy
// runs them: the first denial ends it.
type ChainTrace struct {
	Filters []FilterTrace `json:"filters"`
	Allowed bool          `json:"allowed"`
	// Decision says who decided: the denying policy, "no ALLOW policy
	// matched", or that every filter allowed.
	Decision string `json:"decision"`
}

// Trace evaluates the config on in with a full trace. It reads the same
// compiled engines as the request path (slower: every policy is walked).
func (c *Config) Trace(in *Input) FilterTrace {
	ft := FilterTrace{Allowed: true}
	if c.Shadow != nil {
		ft.Shadow = c.Shadow.Trace(in)
	}
	if c.Rules != nil {
		ft.Rules = c.Rules.Trace(in)
		ft.Allowed = ft.Rules.Allowed
	}
	return ft
}

// Trace evaluates the engine on in, walking every policy.
func (e *Engine) Trace(in *Input) *EngineTrace {
	allowed, p := e.Eval(in)
	et := &EngineTrace{Action: e.Action.String(), Allowed: allowed, Policy: p, Reason: Reason(e.Action, allowed, p)}
	for i := range e.policies {
		pol := &e.policies[i]
		pt := PolicyTrace{Name: pol.name}
		perm, prin := false, false
		for j := range pol.permissions {
			m, why := pol.permissions[j].explain(in)
			perm = perm || m
			pt.Permissions = append(pt.Permissions, NodeTrace{Matched: m, Why: why})
		}
		for j := range pol.principals {
			m, why := pol.principals[j].explain(in)
			prin = prin || m
			pt.Principals = append(pt.Principals, NodeTrace{Matched: m, Why: why})
		}
		pt.Matched = perm && prin
		et.Policies = append(et.Policies, pt)
	}
	return et
}

// explain is match with the reason: for and, the first part that failed
// (or all matched); for or, the part that matched (or that none did); for
// a leaf, what it checks and the value it saw.
func (n *node) explain(in *Input) (bool, string) {
	switch n.kind {
	case kAnd:
		var parts []string
		for i := range n.kids {
			m, why := n.kids[i].explain(in)
			if !m {
				return false, why
			}
			parts = append(parts, why)
		}
		return true, strings.Join(parts, " and ")
	case kOr:
		var parts []string
		for i := range n.kids {
			m, why := n.kids[i].explain(in)
			if m {
				return true, why
			}
			parts = append(parts, why)
		}
		if len(parts) == 1 {
			return false, parts[0]
		}
		return false, "none of [" + strings.Join(parts, "; ") + "]"
	case kNot:
		m, why := n.kids[0].explain(in)
		return !m, "not (" + why + ")"
	}
	m := n.match(in)
	verdict := "matched"
	if !m {
		verdict = "did not match"
	}
	if seen := n.seen(in); seen != "" {
		return m, fmt.Sprintf("%s %s (%s)", n.desc, verdict, seen)
	}
	return m, n.desc + " " + verdict
}

// seen is the value a leaf read.
func (n *node) seen(in *Input) string {
	switch n.kind {
	case kHeader:
		v, ok := n.hdr.value(in)
		if !ok {
			return "absent"
		}
		return "got " + strconv.Quote(v)
	case kPath, kURITemplate:
		if in.R == nil {
			return "no request path on a connection"
		}
		return "path " + strconv.Quote(in.Path)
	case kDestIP, kDestPort, kDestPortRange:
		return "destination " + in.Conn.LocalAddr.String()
	case kSNI:
		return "sni " + strconv.Quote(in.Conn.ServerName)
	case kMetadata:
		v, ok := n.meta.lookup(in.Metadata)
		if !ok {
			return "absent"
		}
		return fmt.Sprintf("got %v", v)
	case kAuthenticated:
		if in.Conn.TLS == nil && in.Conn.PeerPrincipal == "" {
			return "plaintext peer, no certificate"
		}
		return "peer " + strconv.Quote(in.Conn.PeerPrincipal)
	case kDirectRemoteIP:
		return "source " + in.Conn.RemoteAddr.Addr().String()
	case kRemoteIP:
		return "remote " + in.remoteAddr().String()
	}
	return ""
}

// TraceHTTPFilters evaluates the RBAC filters among a connection
// manager's http_filters in order on a, as the proxy would, and traces
// each. Other filters are skipped (jwt_authn's result is a's JWTPayload).
func TraceHTTPFilters(hfs []*hcm.HttpFilter, a *Attributes) (*ChainTrace, error) {
	in := a.Input(false)
	ct := &ChainTrace{Allowed: true}
	for i, hf := range hfs {
		var m rbachttp.RBAC
		if hf.GetTypedConfig() == nil || !hf.GetTypedConfig().MessageIs(&m) {
			continue
		}
		if err := hf.GetTypedConfig().UnmarshalTo(&m); err != nil {
			return nil, fmt.Errorf("http filter %d (%s): %w", i, hf.Name, err)
		}
		c, err := CompileHTTP(&m)
		if err != nil {
			return nil, fmt.Errorf("http filter %d (%s): %w", i, hf.Name, err)
		}
		if ct.add(i, c, &in) {
			return ct, nil
		}
	}
	ct.Decision = "allowed: no RBAC filter denied"
	return ct, nil
}

// TraceNetworkFilters is TraceHTTPFilters for a TCP filter chain's
// network filters (envoy.filters.network.rbac before tcp_proxy).
func TraceNetworkFilters(fs []*listener.Filter, a *Attributes) (*ChainTrace, error) {
	in := a.Input(true)
	ct := &ChainTrace{Allowed: true}
	for i, f := range fs {
		if f.Name != NetworkName {
			continue
		}
		nf, err := CompileNetwork(f.GetTypedConfig())
		if err != nil {
			return nil, fmt.Errorf("network filter %d: %w", i, err)
		}
		if ct.add(i, nf.cfg, &in) {
			return ct, nil
		}
	}
	ct.Decision = "allowed: no RBAC filter denied"
	return ct, nil
}

// add traces one filter; true when it denied (the chain stops).
func (ct *ChainTrace) add(i int, c *Config, in *Input) bool {
	ft := c.Trace(in)
	ft.Index = i
	ct.Filters = append(ct.Filters, ft)
	if ft.Allowed {
		return false
	}
	ct.Allowed = false
	ct.Decision = "denied: " + ft.Rules.Reason
	return true
}

// TraceListener traces a's request (or connection) through a listener
// as the proxy would serve it: the filter chain an mTLS peer
// (a.SourcePrincipal set) or a plaintext one would take (by
// filter_chain_match transport_protocol "tls" / "raw_buffer", else the
// first chain), then its connection manager's RBAC http_filters, or for
// a TCP chain its network RBAC filters.
func TraceListener(l *listener.Listener, a *Attributes) (*ChainTrace, error) {
	if len(l.GetFilterChains()) == 0 {
		return nil, fmt.Errorf("listener %q: no filter chains", l.GetName())
	}
	want := "raw_buffer"
	if a.SourcePrincipal != "" {
		want = "tls"
	}
	fc := l.FilterChains[0]
	for _, c := range l.FilterChains {
		if tp := c.GetFilterChainMatch().GetTransportProtocol(); tp == want {
			fc = c
			break
		}
	}
	for _, f := range fc.Filters {
		var m hcm.HttpConnectionManager
		if f.GetTypedConfig() == nil || !f.GetTypedConfig().MessageIs(&m) {
			continue
		}
		if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
			return nil, fmt.Errorf("listener %q: %w", l.GetName(), err)
		}
		return TraceHTTPFilters(m.HttpFilters, a)
	}
	return TraceNetworkFilters(fc.Filters, a)
}
