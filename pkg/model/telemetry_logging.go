package model

import (
	"slices"
	"sort"

	tpb "istio.io/api/telemetry/v1alpha1"
)

// loggingSpec is one provider's merged access logging.
type loggingSpec struct {
	disabled bool
	filter   *tpb.AccessLogging_Filter
}

// AccessLogging is the access logging of p's listeners of class from
// Telemetry resources and MeshConfig defaultProviders.accessLogging
// (Istio's Telemetries.AccessLogging), one entry per provider sorted by
// name. nil or empty: the generators fall back to MeshConfig
// accessLogFile, as Istio's setHTTPAccessLog does. Providers that are not
// defined, or not access log providers, are skipped (TelemetryErrors
// reports them).
func (pc *PushContext) AccessLogging(p *Proxy, class ListenerClass) []LoggingConfig {
	a := pc.applicableTelemetries(p)
	if len(a.logging) == 0 && len(pc.Mesh.GetDefaultProviders().GetAccessLogging()) == 0 {
		return nil
	}
	merged := mergeLogs(a.logging, pc.Mesh.GetDefaultProviders().GetAccessLogging(), workloadMode(class))
	out := make([]LoggingConfig, 0, len(merged))
	for name, spec := range merged {
		prov := pc.fetchProvider(name)
		if providerSection(prov) != sectionLogging {
			continue
		}
		out = append(out, LoggingConfig{Provider: prov, Filter: spec.filter, Disabled: spec.disabled})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Provider.GetName() < out[j].Provider.GetName() })
	return out
}

// mergeLogs is Istio's mergeLogs: the providers in scope are the last
// level's that names any (else the defaults); each entry matching mode
// sets its providers' filter, or disables them; an entry without
// providers applies to its parent level's.
func mergeLogs(levels [][]*tpb.AccessLogging, defaults []string, mode tpb.WorkloadMode) map[string]loggingSpec {
	providers := map[string]loggingSpec{}
	if len(levels) == 0 {
		for _, d := range defaults {
			providers[d] = loggingSpec{}
		}
		return providers
	}
	inScope := defaults
	filters := map[string]loggingSpec{}
	for _, level := range levels {
		var names []string
		for _, l := range level {
			if !matchMode(l.GetMatch(), mode) {
				continue
			}
			for _, n := range providerNames(l.GetProviders()) {
				names = append(names, n)
				filters[n] = loggingSpec{filter: l.GetFilter()}
			}
		}
		if len(names) > 0 {
			inScope = names
		}
	}
	parent := defaults
	for _, level := range levels {
		for _, l := range level {
			names := providerNames(l.GetProviders())
			if len(names) == 0 {
				names = parent
			}
			parent = names
			for _, n := range names {
				if !slices.Contains(inScope, n) || !matchMode(l.GetMatch(), mode) {
					continue
				}
				if l.GetDisabled().GetValue() {
					providers[n] = loggingSpec{disabled: true}
					continue
				}
				providers[n] = filters[n]
			}
		}
	}
	return providers
}

// matchMode is Istio's matchWorkloadMode.
func matchMode(sel *tpb.AccessLogging_LogSelector, mode tpb.WorkloadMode) bool {
	return sel == nil || sel.GetMode() == tpb.WorkloadMode_CLIENT_AND_SERVER || sel.GetMode() == mode
}
