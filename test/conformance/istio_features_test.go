package conformance

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// EnvUnclaimed set to "1" runs checks whose case config uses fields sluice
// does not claim yet, to see how far an implementation in progress gets.
const EnvUnclaimed = "SLUICE_CONFORMANCE_UNCLAIMED"

// claimedFields are the Istio config fields sluice implements and the e2e
// tests cover, per resource kind and level. A case whose config uses any
// other field (fault injection, timeouts, retries, mirroring, traffic
// policies, TCP/TLS routes, ...) has its checks skipped with the fields
// named, like a Gateway API implementation's supported-features list. Add a
// field here when sluice implements it.
var claimedFields = map[string]map[string]bool{
	"VirtualService": set("hosts", "gateways", "http", "tcp", "tls", "exportTo"),
	"VirtualService spec.http[]": set("name", "match", "route", "redirect", "directResponse", "rewrite", "headers", "delegate",
		"timeout", "retries", "fault", "mirror", "mirrorPercentage", "mirrorPercent", "mirrors"),
	"VirtualService spec.http[].match[]": set("name", "uri", "scheme", "method", "authority", "headers", "port",
		"sourceLabels", "queryParams", "ignoreUriCase", "withoutHeaders"),
	"VirtualService spec.http[].route[]": set("destination", "weight", "headers"),
	"VirtualService spec.tcp[]":          set("match", "route"),
	"VirtualService spec.tcp[].match[]":  set("port", "sourceLabels", "gateways", "destinationSubnets", "sourceNamespace"),
	"VirtualService spec.tcp[].route[]":  set("destination", "weight"),
	"DestinationRule":                    set("host", "subsets", "exportTo"),
	"DestinationRule spec.subsets[]":     set("name", "labels"),
}

// unclaimedFields lists the fields of one config document that sluice does
// not claim, as "Kind name: spec.path.field".
func unclaimedFields(kind, name string, spec map[string]any) []string {
	var out []string
	check := func(level string, m map[string]any, path string) {
		claimed, ok := claimedFields[level]
		if !ok {
			return
		}
		for k := range m {
			if !claimed[k] {
				out = append(out, fmt.Sprintf("%s %s: %s.%s", kind, name, path, k))
			}
		}
	}
	each := func(v any, f func(map[string]any)) {
		list, _ := v.([]any)
		for _, item := range list {
			if m, ok := item.(map[string]any); ok {
				f(m)
			}
		}
	}
	switch kind {
	case "VirtualService":
		check(kind, spec, "spec")
		each(spec["http"], func(h map[string]any) {
			check(kind+" spec.http[]", h, "spec.http[]")
			each(h["match"], func(m map[string]any) { check(kind+" spec.http[].match[]", m, "spec.http[].match[]") })
			each(h["route"], func(r map[string]any) { check(kind+" spec.http[].route[]", r, "spec.http[].route[]") })
		})
		each(spec["tcp"], func(h map[string]any) {
			check(kind+" spec.tcp[]", h, "spec.tcp[]")
			each(h["match"], func(m map[string]any) { check(kind+" spec.tcp[].match[]", m, "spec.tcp[].match[]") })
			each(h["route"], func(r map[string]any) { check(kind+" spec.tcp[].route[]", r, "spec.tcp[].route[]") })
		})
	case "DestinationRule":
		check(kind, spec, "spec")
		each(spec["subsets"], func(s map[string]any) { check(kind+" spec.subsets[]", s, "spec.subsets[]") })
	}
	sort.Strings(out)
	return dedupe(out)
}

func dedupe(list []string) []string {
	var out []string
	for i, s := range list {
		if i == 0 || s != list[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// unclaimedReason is the skip reason for a case whose config uses fields
// sluice does not claim, or "" (also when EnvUnclaimed asks to run anyway).
func unclaimedReason(fields []string) string {
	if len(fields) == 0 || os.Getenv(EnvUnclaimed) == "1" {
		return ""
	}
	return fmt.Sprintf("config uses fields sluice does not claim yet (%s=1 runs them anyway): %s",
		EnvUnclaimed, strings.Join(fields, "; "))
}
