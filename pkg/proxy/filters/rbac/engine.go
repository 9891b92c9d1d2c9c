// Package rbac is Envoy's role based access control as the proxy runs it:
// the engine (policies of permissions and principals, compiled once per
// config into a matcher tree; engine.go, matcher.go, header.go,
// metadata.go, uritemplate.go), the HTTP filter envoy.filters.http.rbac
// (filter.go), the network filter envoy.filters.network.rbac for TCP
// (network.go), the decisions explained in counters, log lines, the
// admin page /debug/authz and an opt-in response header (decision.go),
// and a decision trace for `sluice authz check` (trace.go).
//
// Semantics are Envoy's (source/extensions/filters/common/rbac/
// engine_impl.cc and matchers.cc) on the config Istio generates
// (pilot/pkg/security/authz/builder).
package rbac

import (
	"fmt"
	"slices"
	"strings"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// Action is an engine's action.
type Action uint8

const (
	// Allow: a request is allowed iff some policy matches.
	Allow Action = iota
	// Deny: a request is denied iff some policy matches.
	Deny
	// Log: never denies; a matching policy is logged (Istio's AUDIT).
	Log
)

func (a Action) String() string {
	return [...]string{"ALLOW", "DENY", "LOG"}[a]
}

// Engine is one compiled RBAC (rules or shadow_rules).
type Engine struct {
	Action Action
	// policies in name order: Envoy keeps them in a std::map, so the
	// first matching name is the effective policy.
	policies []policy
}

type policy struct {
	name string
	// the policy's counters (policy.<name>.denied, .shadow_denied).
	deniedStat, shadowDeniedStat string
	permissions                  []node
	principals                   []node
}

// fields are the parts of envoy.config.rbac.v3 the engine honours; any
// other field set is NACKed by its path. The matchers' oneofs are checked
// where they are compiled (matcher.go), so that an unsupported one is
// named with its place in the policy.
var fields = xdsfields.Table{
	"envoy.config.rbac.v3.RBAC":           {"action": true, "policies": true},
	"envoy.config.rbac.v3.Policy":         {"permissions": true, "principals": true},
	"envoy.config.rbac.v3.Permission.Set": {"rules": true},
	"envoy.config.rbac.v3.Principal.Set":  {"ids": true},
	"envoy.config.route.v3.HeaderMatcher": {"name": true, "exact_match": true, "safe_regex_match": true,
		"range_match": true, "present_match": true, "prefix_match": true, "suffix_match": true,
		"contains_match": true, "string_match": true, "invert_match": true, "treat_missing_header_as_empty": true},
	"envoy.type.matcher.v3.StringMatcher": {"exact": true, "prefix": true, "suffix": true, "safe_regex": true,
		"contains": true, "ignore_case": true},
	"envoy.type.matcher.v3.RegexMatcher":                {"regex": true},
	"envoy.type.matcher.v3.PathMatcher":                 {"path": true},
	"envoy.type.matcher.v3.MetadataMatcher":             {"filter": true, "path": true, "value": true, "invert": true},
	"envoy.type.matcher.v3.MetadataMatcher.PathSegment": {"key": true},
	"envoy.type.matcher.v3.ValueMatcher": {"null_match": true, "double_match": true, "string_match": true,
		"bool_match": true, "present_match": true, "list_match": true, "or_match": true},
	"envoy.type.matcher.v3.ListMatcher":            {"one_of": true},
	"envoy.type.matcher.v3.OrMatcher":              {"value_matchers": true},
	"envoy.type.matcher.v3.DoubleMatcher":          {"range": true, "exact": true},
	"envoy.config.core.v3.CidrRange":               {"address_prefix": true, "prefix_len": true},
	"envoy.config.core.v3.TypedExtensionConfig":    {"name": true, "typed_config": true},
	"envoy.config.rbac.v3.Principal.Authenticated": {"principal_name": true},
}

func init() {
	// Every Permission and Principal field is a oneof case compiled (or
	// NACKed by name) in matcher.go.
	for _, m := range []protoreflect.Message{(&rbacpb.Permission{}).ProtoReflect(), (&rbacpb.Principal{}).ProtoReflect()} {
		all := map[protoreflect.Name]bool{}
		fs := m.Descriptor().Fields()
		for i := range fs.Len() {
			all[fs.Get(i).Name()] = true
		}
		fields[m.Descriptor().FullName()] = all
	}
}

// Compile compiles an RBAC; where names it in errors ("rules").
func Compile(r *rbacpb.RBAC, where string) (*Engine, error) {
	if err := fields.Check(r); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := r.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	e := &Engine{}
	switch r.GetAction() {
	case rbacpb.RBAC_ALLOW:
		e.Action = Allow
	case rbacpb.RBAC_DENY:
		e.Action = Deny
	case rbacpb.RBAC_LOG:
		e.Action = Log
	default:
		return nil, fmt.Errorf("%s.action %v: not supported", where, r.GetAction())
	}
	names := make([]string, 0, len(r.GetPolicies()))
	for name := range r.GetPolicies() {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p, err := compilePolicy(name, r.GetPolicies()[name], fmt.Sprintf("%s.policies[%q]", where, name))
		if err != nil {
			return nil, err
		}
		e.policies = append(e.policies, p)
	}
	return e, nil
}

func compilePolicy(name string, pb *rbacpb.Policy, where string) (policy, error) {
	p := policy{name: name, deniedStat: "policy." + name + ".denied", shadowDeniedStat: "policy." + name + ".shadow_denied"}
	if pb.GetCondition() != nil || pb.GetCheckedCondition() != nil || pb.GetCelConfig() != nil {
		return p, fmt.Errorf("%s: condition (CEL): not supported", where)
	}
	for i, perm := range pb.GetPermissions() {
		n, err := compilePermission(perm, fmt.Sprintf("%s.permissions[%d]", where, i))
		if err != nil {
			return p, err
		}
		p.permissions = append(p.permissions, n)
	}
	for i, pr := range pb.GetPrincipals() {
		n, err := compilePrincipal(pr, fmt.Sprintf("%s.principals[%d]", where, i))
		if err != nil {
			return p, err
		}
		p.principals = append(p.principals, n)
	}
	return p, nil
}

// matches: some permission and some principal match (Envoy's
// PolicyMatcher with OrMatchers over each list).
func (p *policy) matches(in *Input) bool {
	return anyMatch(p.permissions, in) && anyMatch(p.principals, in)
}

func anyMatch(ns []node, in *Input) bool {
	for i := range ns {
		if ns[i].match(in) {
			return true
		}
	}
	return false
}

// Eval evaluates the engine: the first policy (by name) that matches, ""
// for none, and whether the request is allowed (Envoy's handleAction:
// ALLOW allows iff a policy matched, DENY denies iff one did, LOG always
// allows).
func (e *Engine) Eval(in *Input) (allowed bool, policy string) {
	allowed, p := e.eval(in)
	if p != nil {
		policy = p.name
	}
	return allowed, policy
}

// eval is Eval with the matched policy itself (nil for none).
func (e *Engine) eval(in *Input) (bool, *policy) {
	var matched *policy
	for i := range e.policies {
		if e.policies[i].matches(in) {
			matched = &e.policies[i]
			break
		}
	}
	switch e.Action {
	case Allow:
		return matched != nil, matched
	case Deny:
		return matched == nil, matched
	}
	return true, matched
}

// Policies are the engine's policy names, in evaluation order.
func (e *Engine) Policies() []string {
	out := make([]string, len(e.policies))
	for i := range e.policies {
		out[i] = e.policies[i].name
	}
	return out
}

// httpOnly names the first header, url_path or uri_template matcher in the
// engine's policies, "" for none: Envoy's network RBAC rejects header
// rules (source/extensions/filters/network/rbac/config.cc validateFail),
// and path matchers never match a connection, so sluice rejects them
// there too rather than keep a policy that cannot mean what it says.
func (e *Engine) httpOnly() string {
	for _, p := range e.policies {
		for _, ns := range [][]node{p.permissions, p.principals} {
			for i := range ns {
				if d := ns[i].findHTTPOnly(); d != "" {
					return fmt.Sprintf("policy %q: %s", p.name, d)
				}
			}
		}
	}
	return ""
}

func (n *node) findHTTPOnly() string {
	switch n.kind {
	case kHeader, kPath, kURITemplate:
		return strings.SplitN(n.desc, " ", 2)[0] + " rule (" + n.desc + ")"
	}
	for i := range n.kids {
		if d := n.kids[i].findHTTPOnly(); d != "" {
			return d
		}
	}
	return ""
}
