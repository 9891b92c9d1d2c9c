package rbac

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/strmatch"
)

// The permission and principal trees of a policy, compiled into one node
// type evaluated by a switch (no interface calls, so evaluating a request
// allocates nothing and the Input stays on the caller's stack). Semantics
// follow Envoy's source/extensions/filters/common/rbac/matchers.cc.

// kind is what a node matches.
type kind uint8

const (
	kAny            kind = iota // any: true
	kAnd                        // and_rules / and_ids: every kid (none: true)
	kOr                         // or_rules / or_ids: some kid
	kNot                        // not_rule / not_id: the kid does not match
	kHeader                     // header (HeaderMatcher)
	kPath                       // url_path (PathMatcher on the path without query)
	kURITemplate                // uri_template (UriTemplateMatchConfig)
	kDestIP                     // destination_ip: the downstream local address
	kDestPort                   // destination_port: the local address's port
	kDestPortRange              // destination_port_range [start, end)
	kSNI                        // requested_server_name
	kMetadata                   // metadata (dynamic metadata)
	kAuthenticated              // authenticated (peer certificate)
	kDirectRemoteIP             // direct_remote_ip, source_ip: the connection's peer
	kRemoteIP                   // remote_ip: the downstream remote address (XFF)
)

// node is one compiled Permission or Principal.
type node struct {
	kind kind
	// kids of and / or / not.
	kids []node
	// str is the requested_server_name, url_path or principal_name matcher;
	// hasStr is false for authenticated without principal_name.
	str    strmatch.String
	hasStr bool
	hdr    *headerMatch
	meta   *metaMatch
	tmpl   *uriTemplate
	cidr   netip.Prefix
	port   uint32
	lo, hi uint32
	// desc says what the node checks, for decision traces.
	desc string
}

// compilePermission compiles a Permission; where names it for errors.
func compilePermission(p *rbacpb.Permission, where string) (node, error) {
	switch r := p.GetRule().(type) {
	case *rbacpb.Permission_Any:
		if !r.Any {
			return node{}, fmt.Errorf("%s.any: false is not a valid rule", where)
		}
		return node{kind: kAny, desc: "any"}, nil
	case *rbacpb.Permission_AndRules:
		return compilePermissionSet(kAnd, r.AndRules.GetRules(), where+".and_rules")
	case *rbacpb.Permission_OrRules:
		return compilePermissionSet(kOr, r.OrRules.GetRules(), where+".or_rules")
	case *rbacpb.Permission_NotRule:
		kid, err := compilePermission(r.NotRule, where+".not_rule")
		if err != nil {
			return node{}, err
		}
		return node{kind: kNot, kids: []node{kid}, desc: "not"}, nil
	case *rbacpb.Permission_Header:
		return compileHeaderNode(r.Header, where+".header")
	case *rbacpb.Permission_UrlPath:
		return compilePathNode(r.UrlPath, where+".url_path")
	case *rbacpb.Permission_UriTemplate:
		return compileURITemplateNode(r.UriTemplate, where+".uri_template")
	case *rbacpb.Permission_DestinationIp:
		return compileCIDRNode(kDestIP, r.DestinationIp, where+".destination_ip", "destination.ip")
	case *rbacpb.Permission_DestinationPort:
		return node{kind: kDestPort, port: r.DestinationPort, desc: "destination.port == " + strconv.Itoa(int(r.DestinationPort))}, nil
	case *rbacpb.Permission_DestinationPortRange:
		return compilePortRange(r.DestinationPortRange.GetStart(), r.DestinationPortRange.GetEnd(), where+".destination_port_range")
	case *rbacpb.Permission_RequestedServerName:
		sm, err := compileString(r.RequestedServerName, where+".requested_server_name")
		if err != nil {
			return node{}, err
		}
		return node{kind: kSNI, str: sm, hasStr: true, desc: "connection.sni " + describeString(r.RequestedServerName)}, nil
	case *rbacpb.Permission_Metadata:
		return compileMetadataNode(r.Metadata, where+".metadata")
	case *rbacpb.Permission_Matcher:
		return node{}, fmt.Errorf("%s.matcher: not supported", where)
	case *rbacpb.Permission_SourcedMetadata:
		return node{}, fmt.Errorf("%s.sourced_metadata: not supported", where)
	case nil:
		return node{}, fmt.Errorf("%s: no rule set", where)
	default:
		return node{}, fmt.Errorf("%s: %T: not supported", where, r)
	}
}

func compilePermissionSet(k kind, rules []*rbacpb.Permission, where string) (node, error) {
	n := node{kind: k, kids: make([]node, len(rules)), desc: kindName(k)}
	for i, p := range rules {
		kid, err := compilePermission(p, fmt.Sprintf("%s[%d]", where, i))
		if err != nil {
			return node{}, err
		}
		n.kids[i] = kid
	}
	return n, nil
}

// compilePrincipal compiles a Principal; where names it for errors.
func compilePrincipal(p *rbacpb.Principal, where string) (node, error) {
	switch id := p.GetIdentifier().(type) {
	case *rbacpb.Principal_Any:
		if !id.Any {
			return node{}, fmt.Errorf("%s.any: false is not a valid identifier", where)
		}
		return node{kind: kAny, desc: "any"}, nil
	case *rbacpb.Principal_AndIds:
		return compilePrincipalSet(kAnd, id.AndIds.GetIds(), where+".and_ids")
	case *rbacpb.Principal_OrIds:
		return compilePrincipalSet(kOr, id.OrIds.GetIds(), where+".or_ids")
	case *rbacpb.Principal_NotId:
		kid, err := compilePrincipal(id.NotId, where+".not_id")
		if err != nil {
			return node{}, err
		}
		return node{kind: kNot, kids: []node{kid}, desc: "not"}, nil
	case *rbacpb.Principal_Authenticated_:
		n := node{kind: kAuthenticated, desc: "authenticated peer"}
		if pn := id.Authenticated.GetPrincipalName(); pn != nil {
			sm, err := compileString(pn, where+".authenticated.principal_name")
			if err != nil {
				return node{}, err
			}
			n.str, n.hasStr, n.desc = sm, true, "source.principal "+describeString(pn)
		}
		return n, nil
	case *rbacpb.Principal_SourceIp:
		// Deprecated: the connection's remote address, which is the
		// direct peer (Envoy's IPMatcher ConnectionRemote).
		return compileCIDRNode(kDirectRemoteIP, id.SourceIp, where+".source_ip", "source.ip")
	case *rbacpb.Principal_DirectRemoteIp:
		return compileCIDRNode(kDirectRemoteIP, id.DirectRemoteIp, where+".direct_remote_ip", "source.ip")
	case *rbacpb.Principal_RemoteIp:
		return compileCIDRNode(kRemoteIP, id.RemoteIp, where+".remote_ip", "remote.ip")
	case *rbacpb.Principal_Header:
		return compileHeaderNode(id.Header, where+".header")
	case *rbacpb.Principal_UrlPath:
		return compilePathNode(id.UrlPath, where+".url_path")
	case *rbacpb.Principal_Metadata:
		return compileMetadataNode(id.Metadata, where+".metadata")
	case *rbacpb.Principal_FilterState:
		// Istio generates filter_state (io.istio.peer_principal) only for
		// ambient waypoints (builder Option.UseFilterState), which sluice
		// does not run.
		return node{}, fmt.Errorf("%s.filter_state: not supported", where)
	case *rbacpb.Principal_SourcedMetadata:
		return node{}, fmt.Errorf("%s.sourced_metadata: not supported", where)
	case *rbacpb.Principal_Custom:
		return node{}, fmt.Errorf("%s.custom: not supported", where)
	case nil:
		return node{}, fmt.Errorf("%s: no identifier set", where)
	default:
		return node{}, fmt.Errorf("%s: %T: not supported", where, id)
	}
}

func compilePrincipalSet(k kind, ids []*rbacpb.Principal, where string) (node, error) {
	n := node{kind: k, kids: make([]node, len(ids)), desc: kindName(k)}
	for i, p := range ids {
		kid, err := compilePrincipal(p, fmt.Sprintf("%s[%d]", where, i))
		if err != nil {
			return node{}, err
		}
		n.kids[i] = kid
	}
	return n, nil
}

func kindName(k kind) string {
	switch k {
	case kAnd:
		return "and"
	case kOr:
		return "or"
	}
	return "not"
}

func compileString(m *matcher.StringMatcher, where string) (strmatch.String, error) {
	sm, err := strmatch.Compile(m)
	if err != nil {
		return sm, fmt.Errorf("%s: %w", where, err)
	}
	return sm, nil
}

// describeString is a StringMatcher as a trace shows it.
func describeString(m *matcher.StringMatcher) string {
	ic := ""
	if m.GetIgnoreCase() {
		ic = " (ignoring case)"
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		return fmt.Sprintf("== %q%s", p.Exact, ic)
	case *matcher.StringMatcher_Prefix:
		return fmt.Sprintf("starts with %q%s", p.Prefix, ic)
	case *matcher.StringMatcher_Suffix:
		return fmt.Sprintf("ends with %q%s", p.Suffix, ic)
	case *matcher.StringMatcher_Contains:
		return fmt.Sprintf("contains %q%s", p.Contains, ic)
	case *matcher.StringMatcher_SafeRegex:
		return fmt.Sprintf("matches regex %q", p.SafeRegex.GetRegex())
	}
	return "?"
}

func compilePathNode(pm *matcher.PathMatcher, where string) (node, error) {
	sm := pm.GetPath()
	if sm == nil {
		return node{}, fmt.Errorf("%s: no path matcher", where)
	}
	s, err := compileString(sm, where+".path")
	if err != nil {
		return node{}, err
	}
	return node{kind: kPath, str: s, hasStr: true, desc: "path " + describeString(sm)}, nil
}

func compileCIDRNode(k kind, c *core.CidrRange, where, attr string) (node, error) {
	addr, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return node{}, fmt.Errorf("%s.address_prefix %q: %w", where, c.GetAddressPrefix(), err)
	}
	addr = addr.Unmap()
	bits := addr.BitLen()
	if c.GetPrefixLen() != nil {
		bits = int(c.GetPrefixLen().GetValue())
	}
	if bits > addr.BitLen() {
		return node{}, fmt.Errorf("%s.prefix_len %d: more than %d bits", where, bits, addr.BitLen())
	}
	pfx, err := addr.Prefix(bits)
	if err != nil {
		return node{}, fmt.Errorf("%s: %w", where, err)
	}
	return node{kind: k, cidr: pfx, desc: attr + " in " + pfx.String()}, nil
}

// compilePortRange: Envoy's PortRangeMatcher, [start, end), both in
// 0..65536 and start < end.
func compilePortRange(start, end int32, where string) (node, error) {
	if start < 0 || start > 65536 || end < 0 || end > 65536 || start >= end {
		return node{}, fmt.Errorf("%s: [%d, %d) is not a valid port range", where, start, end)
	}
	return node{kind: kDestPortRange, lo: uint32(start), hi: uint32(end),
		desc: fmt.Sprintf("destination.port in [%d, %d)", start, end)}, nil
}

func compileURITemplateNode(tc *core.TypedExtensionConfig, where string) (node, error) {
	var cfg uritemplatev3.UriTemplateMatchConfig
	if tc.GetTypedConfig() == nil || !tc.GetTypedConfig().MessageIs(&cfg) {
		return node{}, fmt.Errorf("%s.typed_config: only envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig is supported", where)
	}
	if err := tc.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
		return node{}, fmt.Errorf("%s: %w", where, err)
	}
	t, err := compileURITemplate(cfg.PathTemplate)
	if err != nil {
		return node{}, fmt.Errorf("%s.path_template %q: %w", where, cfg.PathTemplate, err)
	}
	return node{kind: kURITemplate, tmpl: t, desc: "path matches template " + strconv.Quote(cfg.PathTemplate)}, nil
}

// match evaluates the node on in.
func (n *node) match(in *Input) bool {
	switch n.kind {
	case kAny:
		return true
	case kAnd:
		for i := range n.kids {
			if !n.kids[i].match(in) {
				return false
			}
		}
		return true
	case kOr:
		for i := range n.kids {
			if n.kids[i].match(in) {
				return true
			}
		}
		return false
	case kNot:
		return !n.kids[0].match(in)
	case kHeader:
		return n.hdr.match(in)
	case kPath:
		// Envoy's PathMatcher: false without a :path (a connection).
		return in.R != nil && n.str.Match(in.Path)
	case kURITemplate:
		return in.R != nil && n.tmpl.match(in.Path)
	case kDestIP:
		return n.cidr.Contains(in.Conn.LocalAddr.Addr().Unmap())
	case kDestPort:
		return in.Conn.LocalAddr.IsValid() && uint32(in.Conn.LocalAddr.Port()) == n.port
	case kDestPortRange:
		p := uint32(in.Conn.LocalAddr.Port())
		return in.Conn.LocalAddr.IsValid() && n.lo <= p && p < n.hi
	case kSNI:
		return n.str.Match(in.Conn.ServerName)
	case kMetadata:
		return n.meta.match(in.Metadata)
	case kAuthenticated:
		return n.matchAuthenticated(in)
	case kDirectRemoteIP:
		return n.cidr.Contains(in.Conn.RemoteAddr.Addr().Unmap())
	case kRemoteIP:
		return n.cidr.Contains(in.remoteAddr())
	}
	return false
}

// matchAuthenticated is Envoy's AuthenticatedMatcher: the connection must
// be TLS; without principal_name any such peer matches; else each URI SAN
// of the peer certificate, then each DNS SAN, then its subject is tried.
// The connection's PeerPrincipal (the first of those) is tried first, so
// the usual case reads no certificate.
func (n *node) matchAuthenticated(in *Input) bool {
	c := in.Conn
	if c.TLS == nil && c.PeerPrincipal == "" {
		return false
	}
	if !n.hasStr {
		return true
	}
	if c.PeerPrincipal != "" && n.str.Match(c.PeerPrincipal) {
		return true
	}
	if c.TLS == nil || len(c.TLS.PeerCertificates) == 0 {
		return c.PeerPrincipal == "" && n.str.Match("")
	}
	cert := c.TLS.PeerCertificates[0]
	for _, u := range cert.URIs {
		if n.str.Match(u.String()) {
			return true
		}
	}
	for _, d := range cert.DNSNames {
		if n.str.Match(d) {
			return true
		}
	}
	subject := ""
	// An empty subject (DER SEQUENCE {}, as in Istio's workload
	// certificates) needs no formatting.
	if len(cert.RawSubject) != 2 {
		subject = cert.Subject.String()
	}
	return n.str.Match(subject)
}

// trimQuery is the path without query and fragment
// (Http::PathUtil::removeQueryAndFragment).
func trimQuery(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}
