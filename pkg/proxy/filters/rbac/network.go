package rbac

import (
	"fmt"
	"strings"

	rbactcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// NetworkName is the network filter's name, as Envoy registers it.
const NetworkName = "envoy.filters.network.rbac"

// NetworkFilter is a compiled envoy.filters.network.rbac: it judges a
// connection once, before any byte goes upstream.
//
// Envoy's network RBAC (source/extensions/filters/network/rbac) judges a
// connection when its first bytes arrive (enforcement_type
// ONE_TIME_ON_FIRST_BYTE), while tcp_proxy may already have connected
// upstream; sluice judges it when it is accepted (after any TLS
// handshake the proxy terminates), before the upstream connection is
// made. The attributes a network policy can read (addresses, SNI, peer
// certificate) are the same at both points, so the decision is too.
type NetworkFilter struct {
	cfg *Config
	// prefix is where its counters live: <stat_prefix>rbac.
	prefix string
}

var networkFields = map[protoreflect.Name]bool{"rules": true, "shadow_rules": true, "shadow_rules_stat_prefix": true,
	"stat_prefix": true, "enforcement_type": true}

// CompileNetwork compiles an envoy.filters.network.rbac typed_config.
// Header rules are rejected as Envoy rejects them in the network filter
// ("Found header(...) rule, not supported by RBAC network filter",
// network/rbac/config.cc); url_path and uri_template, which Envoy accepts
// there but never matches (a connection has no :path), are rejected too.
// matcher, shadow_matcher and delay_deny are NACKed by name.
// enforcement_type CONTINUOUS is accepted: with nothing that changes a
// connection's attributes after it is accepted, one decision is the same
// as re-deciding on every read.
func CompileNetwork(a *anypb.Any) (*NetworkFilter, error) {
	var m rbactcp.RBAC
	if err := a.UnmarshalTo(&m); err != nil {
		return nil, fmt.Errorf("rbac: %w", err)
	}
	if bad := xdsfields.Unsupported(&m, networkFields); len(bad) > 0 {
		return nil, fmt.Errorf("rbac: %v: not supported", bad)
	}
	if err := m.ValidateAll(); err != nil {
		return nil, fmt.Errorf("rbac: %w", err)
	}
	cfg, err := newConfig(m.Rules, m.ShadowRules, "", m.ShadowRulesStatPrefix)
	if err != nil {
		return nil, fmt.Errorf("rbac: %w", err)
	}
	for _, e := range []*Engine{cfg.Rules, cfg.Shadow} {
		if e == nil {
			continue
		}
		if d := e.httpOnly(); d != "" {
			return nil, fmt.Errorf("rbac: %s: not supported by the network filter (HTTP only)", d)
		}
	}
	prefix := m.StatPrefix
	if !strings.HasSuffix(prefix, ".") {
		prefix += "." // Envoy's statPrefixJoin
	}
	return &NetworkFilter{cfg: cfg, prefix: prefix}, nil
}

// Config is the filter's compiled rules.
func (f *NetworkFilter) Config() *Config { return f.cfg }

// Allow judges a connection: counted in <stat_prefix>rbac.*, recorded
// and logged like HTTP decisions; false means close it.
func (f *NetworkFilter) Allow(c *httpfilter.Conn, sc *httpfilter.Scope) bool {
	sh := shared(sc)
	in := Input{Conn: c}
	allowed, _ := f.cfg.judge(&in, sh.tcpStats(f.prefix), sh, "tcp", f.prefix)
	return allowed
}
