package rbac

import (
	"fmt"
	"net/http"
	"time"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// Name is the HTTP filter's name, as Envoy registers it.
const Name = "envoy.filters.http.rbac"

// DeniedBody is Envoy's body for a request the filter denies.
const DeniedBody = "RBAC: access denied"

var slot = httpfilter.Register(factory{})

// Config is a compiled RBAC filter config, HTTP or network: the enforced
// rules and the shadow (dry-run) rules, either nil when absent, with the
// names of the counters they count in.
type Config struct {
	Rules, Shadow *Engine

	allowed, denied, shadowAllowed, shadowDenied string
}

// newConfig compiles rules and shadow rules (nil when absent).
func newConfig(rules, shadow *rbacpb.RBAC, rulesPrefix, shadowPrefix string) (*Config, error) {
	c := &Config{allowed: rulesPrefix + "allowed", denied: rulesPrefix + "denied",
		shadowAllowed: shadowPrefix + "shadow_allowed", shadowDenied: shadowPrefix + "shadow_denied"}
	var err error
	if rules != nil {
		if c.Rules, err = Compile(rules, "rules"); err != nil {
			return nil, err
		}
	}
	if shadow != nil {
		if c.Shadow, err = Compile(shadow, "shadow_rules"); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// httpFields are the envoy.filters.http.rbac fields honoured.
var httpFields = map[protoreflect.Name]bool{"rules": true, "rules_stat_prefix": true, "shadow_rules": true, "shadow_rules_stat_prefix": true}

// CompileHTTP compiles an envoy.filters.http.rbac config. matcher and
// shadow_matcher (the matching API) and track_per_rule_stats are NACKed
// by name.
func CompileHTTP(m *rbachttp.RBAC) (*Config, error) {
	if bad := xdsfields.Unsupported(m, httpFields); len(bad) > 0 {
		return nil, fmt.Errorf("%v: not supported", bad)
	}
	if err := m.ValidateAll(); err != nil {
		return nil, err
	}
	return newConfig(m.Rules, m.ShadowRules, m.RulesStatPrefix, m.ShadowRulesStatPrefix)
}

type factory struct{}

func (factory) Name() string { return Name }

func (factory) ConfigType() string {
	return string((&rbachttp.RBAC{}).ProtoReflect().Descriptor().FullName())
}

func (factory) NewFilter(cfg *anypb.Any) (httpfilter.Filter, error) {
	if cfg == nil {
		return nil, fmt.Errorf("rbac: typed_config is required")
	}
	var m rbachttp.RBAC
	if err := cfg.UnmarshalTo(&m); err != nil {
		return nil, fmt.Errorf("rbac: %w", err)
	}
	c, err := CompileHTTP(&m)
	if err != nil {
		return nil, fmt.Errorf("rbac: %w", err)
	}
	return &filter{cfg: c}, nil
}

// perRoute is a compiled RBACPerRoute: cfg nil disables the filter on the
// route (Envoy: an absent rbac disables the global policy there).
type perRoute struct{ cfg *Config }

// CompilePerRoute compiles RBACPerRoute from the route's
// typed_per_filter_config, else its virtual host's (the most specific
// one wins, as Envoy reads it). It overrides every RBAC filter of the
// chain, since they share the name.
func (factory) CompilePerRoute(in *httpfilter.PerRouteInput) (any, error) {
	a := in.Route.TypedPerFilterConfig[Name]
	if a == nil {
		a = in.VirtualHost.TypedPerFilterConfig[Name]
	}
	if a == nil {
		return nil, nil
	}
	var fc route.FilterConfig
	if a.MessageIs(&fc) {
		return nil, fmt.Errorf("rbac: typed_per_filter_config: FilterConfig wrapper not supported")
	}
	var pr rbachttp.RBACPerRoute
	if err := a.UnmarshalTo(&pr); err != nil {
		return nil, fmt.Errorf("rbac: typed_per_filter_config: %w", err)
	}
	if err := pr.ValidateAll(); err != nil {
		return nil, fmt.Errorf("rbac: typed_per_filter_config: %w", err)
	}
	if pr.Rbac == nil {
		return &perRoute{}, nil
	}
	c, err := CompileHTTP(pr.Rbac)
	if err != nil {
		return nil, fmt.Errorf("rbac: typed_per_filter_config: rbac: %w", err)
	}
	return &perRoute{cfg: c}, nil
}

func (factory) NewListenerStats() httpfilter.Stats { return &Stats{} }

func (factory) NewProxyStats() httpfilter.Stats { return &Shared{} }

type filter struct{ cfg *Config }

// Decode judges the request: shadow rules are evaluated, counted and
// logged; the rules, when present, deny with 403 "RBAC: access denied"
// (Envoy's RoleBasedAccessControlFilter::decodeHeaders).
func (f *filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	cfg := f.cfg
	if pr, _ := s.Route.FilterConfig(slot).(*perRoute); pr != nil {
		if cfg = pr.cfg; cfg == nil {
			return httpfilter.Continue
		}
	}
	conn := s.Conn
	if conn == nil {
		// A connection manager that did not fill Stream.Conn: what the
		// request says (allocates; the listener fills Conn once per
		// connection).
		c := ConnFromRequest(s.R)
		conn = &c
	}
	in := Input{R: s.R, Path: router.RequestPath(s.R), Conn: conn, Metadata: s.Metadata}
	sh := shared(s.Proxy)
	allowed, p := cfg.judge(&in, s.Listener.Filter(slot).(*Stats), sh, "http", s.Info.StatPrefix)
	if allowed {
		return httpfilter.Continue
	}
	reason := "rbac: access denied"
	if sh.explain.Load() {
		why := Reason(cfg.Rules.Action, false, p)
		s.W.Header().Set(ExplainHeader, why)
		reason += ": " + why
	}
	httpfilter.LocalReply(s.W, &s.Info, http.StatusForbidden, 0, reason, DeniedBody)
	return httpfilter.Answered
}

// judge evaluates the shadow rules and the rules on in, counts into st,
// records and logs; it reports whether in is allowed and the deciding
// policy of the rules ("" for none).
func (c *Config) judge(in *Input, st *Stats, sh *Shared, kind, filter string) (bool, string) {
	var d Decision
	if c.Shadow != nil {
		allowed, p := c.Shadow.eval(in)
		name := ""
		if p != nil {
			name = p.name
		}
		if allowed {
			st.inc(c.shadowAllowed)
		} else {
			st.inc(c.shadowDenied)
			if p != nil {
				st.inc(p.shadowDeniedStat)
			}
		}
		fill(&d, in, kind, filter, c.Shadow.Action, allowed, name)
		d.Shadow = true
		sh.record(&d)
		sh.logDecision(&d)
	}
	if c.Rules == nil {
		return true, ""
	}
	allowed, p := c.Rules.eval(in)
	name := ""
	if p != nil {
		name = p.name
	}
	if allowed {
		st.inc(c.allowed)
	} else {
		st.inc(c.denied)
		if p != nil {
			st.inc(p.deniedStat)
		}
	}
	fill(&d, in, kind, filter, c.Rules.Action, allowed, name)
	d.Shadow = false
	sh.record(&d)
	sh.logDecision(&d)
	return allowed, name
}

func fill(d *Decision, in *Input, kind, filter string, a Action, allowed bool, policy string) {
	d.Time, d.Kind, d.Filter, d.Action, d.Allowed, d.Policy = time.Now(), kind, filter, a.String(), allowed, policy
	d.Source, d.Principal = in.Conn.RemoteAddr, in.Conn.PeerPrincipal
	if in.R != nil {
		d.Method, d.Authority, d.Path = in.R.Method, in.R.Host, in.Path
	}
}
