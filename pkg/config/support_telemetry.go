package config

import (
	"fmt"
	"maps"
	"slices"

	tpb "istio.io/api/telemetry/v1alpha1"
)

const (
	telemetryTracingGen = "resolved per proxy as istiod's Telemetries.Tracing; the tracing generator (pkg/xdsgen tracing) applies it"
	telemetryMetricsGen = "resolved per proxy as istiod's mergeMetrics; the istio.stats generator applies it"
)

// telemetryRows are the support table's rows for Telemetry.
func telemetryRows() []Feature {
	k := string(KindTelemetry)
	out := rows(
		supported(k, "root namespace (mesh), namespace and workload Telemetry merged as istiod's applicableTelemetries", "spec.selector"),
		supported(k, "", "spec.accessLogging", "spec.accessLogging[].providers"),
		supported(k, "drops the provider's access_log for the listeners matched", "spec.accessLogging[].disabled"),
		supported(k, "CLIENT: outbound and gateway listeners; SERVER: inbound; CLIENT_AND_SERVER (default): both",
			"spec.accessLogging[].match.mode"),
		supported(k, "Envoy's CEL access log filter (envoy.access_loggers.extension_filters.cel); attributes sluice's proxy "+
			"does not provide are refused", "spec.accessLogging[].filter.expression"),
		unclaimed(notConformance, supported(k, "to a Gateway (gateway.networking.k8s.io): applies to that Gateway's router proxies, as istiod",
			"spec.targetRef", "spec.targetRefs")),
		unclaimed(notConformance, rows(supported(k, telemetryTracingGen, "spec.tracing"),
			supported(k, "", "spec.tracing[].providers",
				"spec.tracing[].match.mode", "spec.tracing[].randomSamplingPercentage", "spec.tracing[].disableSpanReporting",
				"spec.tracing[].customTags", "spec.tracing[].customTags[].literal", "spec.tracing[].customTags[].environment",
				"spec.tracing[].customTags[].header", "spec.tracing[].useRequestIdForTraceSampling",
				"spec.tracing[].enableIstioTags", "spec.tracing[].disableContextPropagation"))),
		unclaimed(notConformance, rows(supported(k, telemetryMetricsGen, "spec.metrics"),
			supported(k, "", "spec.metrics[].providers",
				"spec.metrics[].overrides", "spec.metrics[].overrides[].match", "spec.metrics[].overrides[].match.metric",
				"spec.metrics[].overrides[].match.customMetric", "spec.metrics[].overrides[].match.mode",
				"spec.metrics[].overrides[].disabled", "spec.metrics[].overrides[].tagOverrides"))),
		[]Feature{
			{Kind: k, Field: "spec.targetRefs", Support: Rejected, Reason: waypointTargets, find: waypointTargetRefs},
			{Kind: k, Field: "spec.tracing[].customTags[].formatter", Support: Rejected,
				Reason: "formatter custom tags (Envoy substitution formatters) are not implemented; use literal, environment or header",
				find:   formatterTags},
			{Kind: k, Field: "spec.tracing[].useRequestIdForTraceSampling", Support: Rejected,
				Reason: "true (Envoy's request_id_extension keeping the sampling decision in x-request-id) is not implemented: " +
					"sluice samples each request at random; false is what it does",
				find: requestIDSampling},
			{Kind: k, Field: "spec.metrics[].reportingInterval", Support: Rejected,
				Reason: "reportingInterval (the stats filter's periodic TCP reporting) is not implemented: sluice records TCP metrics when a connection ends",
				find:   reportingIntervals},
		},
	)
	return out
}

func telemetrySpec(r *Resource) *tpb.Telemetry {
	t, _ := r.Spec.(*tpb.Telemetry)
	return t
}

func formatterTags(r *Resource) []string {
	var out []string
	for i, tr := range telemetrySpec(r).GetTracing() {
		for _, name := range slices.Sorted(maps.Keys(tr.GetCustomTags())) {
			if tr.GetCustomTags()[name].GetFormatter() != nil {
				out = append(out, mapKey(fmt.Sprintf("spec.tracing[%d].customTags", i), name)+".formatter")
			}
		}
	}
	return out
}

func requestIDSampling(r *Resource) []string {
	var out []string
	for i, tr := range telemetrySpec(r).GetTracing() {
		if tr.GetUseRequestIdForTraceSampling().GetValue() {
			out = append(out, fmt.Sprintf("spec.tracing[%d].useRequestIdForTraceSampling", i))
		}
	}
	return out
}

func reportingIntervals(r *Resource) []string {
	var out []string
	for i, m := range telemetrySpec(r).GetMetrics() {
		if m.GetReportingInterval() != nil {
			out = append(out, fmt.Sprintf("spec.metrics[%d].reportingInterval", i))
		}
	}
	return out
}
