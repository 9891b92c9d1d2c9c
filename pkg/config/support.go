package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	networking "istio.io/api/networking/v1alpha3"
)

// Support says what sluice does with a kind or a field.
type Support int

// The three answers of the support table.
const (
	// Supported: enforced as Istio (and Envoy) do.
	Supported Support = iota
	// Rejected: an error naming file, resource and field; the resource
	// does not apply until the field is removed.
	Rejected
	// NotEnforcedKind: a whole kind accepted and kept but not enforced
	// yet, reported loudly (Decode's Result.NotEnforced).
	NotEnforcedKind
	// IgnoredByDesign: a field of a Kubernetes object (status-like data)
	// that does not change what Istio does, read by nobody on purpose.
	IgnoredByDesign
)

func (s Support) String() string {
	return [...]string{"supported", "rejected", "not enforced", "ignored by design"}[s]
}

// Feature is one row of the support table: the one place that says what
// sluice does with a field. Unsupported() reports its Rejected rows,
// docs/config.md's "Support table" section is generated from it (and a
// test fails when it is stale), and the conformance runner claims its
// Supported rows.
type Feature struct {
	// Kind is the resource kind ("DestinationRule"); for NotEnforced
	// kinds, group/Kind ("telemetry.istio.io/Telemetry").
	Kind string
	// Field is the path in the resource, lists as "[]"
	// ("spec.http[].match[].uri"); empty for a whole kind. Traffic policy
	// rows (spec.trafficPolicy...) hold for subsets' and port-level
	// policies too.
	Field   string
	Support Support
	// Reason says why a field is rejected or what a kind does not do;
	// for supported rows an optional note.
	Reason string
	// Unclaimed, on a supported row, says why the conformance runner does
	// not claim it yet.
	Unclaimed string
	// find lists where a Rejected field is set in a resource, as field
	// paths with indices.
	find func(r *Resource) []string
}

// Unsupported reports the fields of r that Istio accepts but sluice does
// not implement (the Rejected rows of the support table). They are
// errors, like validation errors: the resource keeps its last good
// version and the message says what to remove, so nothing a user writes
// is silently ignored.
func Unsupported(r *Resource) Errors {
	var errs Errors
	for _, f := range allRows {
		if f.Support != Rejected || f.Kind != string(r.Kind) || f.find == nil {
			continue
		}
		for _, path := range f.find(r) {
			errs = append(errs, &Error{Source: r.Source, Key: r.Key(), Field: path,
				Err: errors.New(f.Reason + "; remove it to apply this resource")})
		}
	}
	return errs
}

// SupportTable is every row of the support table, the not-enforced kinds
// included, in a stable order.
func SupportTable() []Feature {
	out := append([]Feature(nil), allRows...)
	for _, group := range slices.Sorted(maps.Keys(notEnforcedKinds)) {
		for _, kind := range slices.Sorted(maps.Keys(notEnforcedKinds[group])) {
			out = append(out, Feature{Kind: group + "/" + kind, Support: NotEnforcedKind, Reason: notEnforcedKinds[group][kind]})
		}
	}
	return out
}

// The finders of Rejected rows.

func sidecarSpec(r *Resource) *networking.Sidecar {
	s, _ := r.Spec.(*networking.Sidecar)
	return s
}

func gatewayServers(r *Resource, f func(path string, s *networking.Server) bool) []string {
	g, ok := r.Spec.(*networking.Gateway)
	if !ok {
		return nil
	}
	var out []string
	for i, s := range g.Servers {
		if f(fmt.Sprintf("spec.servers[%d]", i), s) {
			out = append(out, fmt.Sprintf("spec.servers[%d]", i))
		}
	}
	return out
}

// serverTLS finds a set server tls field (set) under the modes that
// leave it without effect (when).
func serverTLS(field string, set func(t *networking.ServerTLSSettings) bool, when func(t *networking.ServerTLSSettings) bool) func(r *Resource) []string {
	return func(r *Resource) []string {
		paths := gatewayServers(r, func(_ string, s *networking.Server) bool {
			t := s.GetTls()
			return t != nil && set(t) && when(t)
		})
		for i := range paths {
			paths[i] += ".tls." + field
		}
		return paths
	}
}

// trafficPolicies calls f for every traffic policy of a DestinationRule
// (the rule's, the subsets') and every port-level one, by path.
func trafficPolicies(r *Resource, f func(path string, p *networking.TrafficPolicy, pl *networking.TrafficPolicy_PortTrafficPolicy)) {
	dr, ok := r.Spec.(*networking.DestinationRule)
	if !ok {
		return
	}
	eachTrafficPolicy(dr, func(path string, p *networking.TrafficPolicy) {
		f(path, p, nil)
		for i, pl := range p.PortLevelSettings {
			f(fmt.Sprintf("%s.portLevelSettings[%d]", path, i), nil, pl)
		}
	})
}

// policyField finds a DestinationRule field in every traffic policy
// (get reads it from the policy, getPort from a port-level one, nil when
// that level has no such field).
func policyField(field string, get func(p *networking.TrafficPolicy) bool, getPort func(p *networking.TrafficPolicy_PortTrafficPolicy) bool) func(r *Resource) []string {
	return func(r *Resource) []string {
		var out []string
		trafficPolicies(r, func(path string, p *networking.TrafficPolicy, pl *networking.TrafficPolicy_PortTrafficPolicy) {
			if (p != nil && get != nil && get(p)) || (pl != nil && getPort != nil && getPort(pl)) {
				out = append(out, path+"."+field)
			}
		})
		return out
	}
}

// clientTLS finds a DestinationRule tls field set under conditions that
// leave it without effect.
func clientTLS(field string, bad func(t *networking.ClientTLSSettings) bool) func(r *Resource) []string {
	return policyField("tls."+field,
		func(p *networking.TrafficPolicy) bool { return p.GetTls() != nil && bad(p.GetTls()) },
		func(p *networking.TrafficPolicy_PortTrafficPolicy) bool { return p.GetTls() != nil && bad(p.GetTls()) })
}
