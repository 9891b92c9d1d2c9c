package config

import (
	"fmt"
	"maps"
	"slices"

	tpb "istio.io/api/telemetry/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog/celfilter"
	"github.com/sluice-mesh/sluice/pkg/telemetryexpr"
)

// telemetry checks a Telemetry as Istio's ValidateTelemetry
// (pkg/config/validation/validation.go) does, and more strictly where
// sluice would otherwise ignore something: an accessLogging
// filter.expression must name only the attributes sluice's proxy
// provides (celfilter), and a tagOverrides value must be an expression the
// metrics support evaluates (telemetryexpr). Provider names are checked
// against MeshConfig when a push resolves them (pkg/model telemetry).
func (v *validator) telemetry(t *tpb.Telemetry) {
	v.policyTargets(t.GetSelector(), t.GetTargetRef(), t.GetTargetRefs())
	for i, tr := range t.GetTracing() {
		v.telemetryTracing(idx("spec.tracing", i), tr)
	}
	for i, m := range t.GetMetrics() {
		v.telemetryMetrics(idx("spec.metrics", i), m)
	}
	for i, l := range t.GetAccessLogging() {
		f := idx("spec.accessLogging", i)
		if l == nil {
			v.errorf(f, "may not be null")
			continue
		}
		v.telemetryProviders(f+".providers", l.GetProviders())
		v.workloadMode(f+".match.mode", l.GetMatch().GetMode())
		if l.Filter != nil {
			v.check(f+".filter.expression", celfilter.Check(l.GetFilter().GetExpression()))
		}
	}
}

func (v *validator) telemetryProviders(field string, ps []*tpb.ProviderRef) {
	for i, p := range ps {
		if p.GetName() == "" {
			v.errorf(idx(field, i)+".name", "providers.name may not be empty")
		}
	}
}

func (v *validator) workloadMode(field string, m tpb.WorkloadMode) {
	if _, ok := tpb.WorkloadMode_name[int32(m)]; !ok {
		v.errorf(field, "unknown mode %d", m)
	}
}

func (v *validator) telemetryTracing(field string, tr *tpb.Tracing) {
	if tr == nil {
		v.errorf(field, "may not be null")
		return
	}
	v.telemetryProviders(field+".providers", tr.GetProviders())
	v.workloadMode(field+".match.mode", tr.GetMatch().GetMode())
	if p := tr.GetRandomSamplingPercentage(); p != nil && (p.GetValue() < 0 || p.GetValue() > 100) {
		v.errorf(field+".randomSamplingPercentage", "randomSamplingPercentage must be in range [0.0, 100.0]")
	}
	for _, name := range slices.Sorted(maps.Keys(tr.GetCustomTags())) {
		f := mapKey(field+".customTags", name)
		tag := tr.GetCustomTags()[name]
		if name == "" {
			v.errorf(f, "tag name may not be empty")
		}
		switch t := tag.GetType().(type) {
		case nil:
			v.errorf(f, "tag '%s' may not have a nil value", name)
		case *tpb.Tracing_CustomTag_Literal:
			if t.Literal.GetValue() == "" {
				v.errorf(f+".literal.value", "literal tag value may not be empty")
			}
		case *tpb.Tracing_CustomTag_Header:
			if t.Header.GetName() == "" {
				v.errorf(f+".header.name", "header tag name may not be empty")
			}
		case *tpb.Tracing_CustomTag_Environment:
			if t.Environment.GetName() == "" {
				v.errorf(f+".environment.name", "environment tag name may not be empty")
			}
		}
	}
}

func (v *validator) telemetryMetrics(field string, m *tpb.Metrics) {
	if m == nil {
		v.errorf(field, "may not be null")
		return
	}
	v.telemetryProviders(field+".providers", m.GetProviders())
	for i, o := range m.GetOverrides() {
		f := idx(field+".overrides", i)
		if o == nil {
			v.errorf(f, "tagOverrides may not be null")
			continue
		}
		v.workloadMode(f+".match.mode", o.GetMatch().GetMode())
		switch mm := o.GetMatch().GetMetricMatch().(type) {
		case *tpb.MetricSelector_CustomMetric:
			if mm.CustomMetric == "" {
				v.errorf(f+".match.customMetric", "customMetric may not be empty")
			}
		case *tpb.MetricSelector_Metric:
			if _, ok := tpb.MetricSelector_IstioMetric_name[int32(mm.Metric)]; !ok {
				v.errorf(f+".match.metric", "unknown metric %d", mm.Metric)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(o.GetTagOverrides())) {
			v.tagOverride(mapKey(f+".tagOverrides", name), o.GetTagOverrides()[name])
		}
	}
}

func (v *validator) tagOverride(field string, to *tpb.MetricsOverrides_TagOverride) {
	if to == nil {
		v.errorf(field, "tagOverrides may not be null")
		return
	}
	switch to.GetOperation() {
	case tpb.MetricsOverrides_TagOverride_UPSERT:
		if to.GetValue() == "" {
			v.errorf(field+".value", "tagOverrides.value must be set when operation is UPSERT")
			return
		}
		if err := telemetryexpr.Check(to.GetValue()); err != nil {
			v.errorf(field+".value", "%v", err)
		}
	case tpb.MetricsOverrides_TagOverride_REMOVE:
		if to.GetValue() != "" {
			v.errorf(field+".value", "tagOverrides.value may only be set when operation is UPSERT")
		}
	default:
		v.errorf(field+".operation", "unknown operation %d", to.GetOperation())
	}
}

// telemetryWarnings are Istio's ValidateTelemetry warnings: the resource
// applies, and the author is told what Istio (and sluice) do instead.
func telemetryWarnings(r *Resource, warn func(field, msg string)) {
	t, ok := r.Spec.(*tpb.Telemetry)
	if !ok {
		return
	}
	selectorWarning(t.GetSelector(), warn)
	if len(t.GetTracing()) > 1 {
		warn("spec.tracing", "multiple tracing is not currently supported: the entries are merged in order, "+
			"later fields overriding earlier ones (Istio's Telemetries.Tracing)")
	}
	for i, tr := range t.GetTracing() {
		if len(tr.GetProviders()) > 1 {
			warn(fmt.Sprintf("spec.tracing[%d].providers", i), "multiple providers is not currently supported: only the first is used")
		}
	}
	for i, m := range t.GetMetrics() {
		for j, o := range m.GetOverrides() {
			if _, ok := o.GetTagOverrides()[""]; ok {
				warn(fmt.Sprintf("spec.metrics[%d].overrides[%d].tagOverrides", i, j), "tagOverrides.name may not be empty")
			}
		}
	}
}
