package conformance

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// EnvUnclaimed set to "1" runs checks whose case config uses fields sluice
// does not claim yet, to see how far an implementation in progress gets.
const EnvUnclaimed = "SLUICE_CONFORMANCE_UNCLAIMED"

// claimedFields are the Istio config fields sluice implements and the e2e
// tests cover, per resource kind and level, as "level" -> field names:
// the supported rows of the support table (pkg/config/support_table.go)
// not marked Unclaimed. A case whose config uses any other field has its
// checks skipped with the fields named, like a Gateway API
// implementation's supported-features list. Claim a field there.
var claimedFields = claimedFromTable(config.SupportTable())

// claimedFromTable turns support table rows into claim levels:
// "VirtualService" for spec's own fields, "VirtualService spec.http[]"
// below, and "DestinationRule trafficPolicy[.x]" for traffic policies at
// any level (the rule's, a subset's).
func claimedFromTable(rows []config.Feature) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, f := range rows {
		if f.Support != config.Supported || f.Unclaimed != "" || (f.Kind != "VirtualService" && f.Kind != "DestinationRule") {
			continue
		}
		i := strings.LastIndex(f.Field, ".")
		parent, key := f.Field[:i], f.Field[i+1:]
		level := f.Kind
		switch {
		case parent == "spec":
		case strings.HasPrefix(parent, "spec.trafficPolicy"):
			level += " " + strings.TrimPrefix(parent, "spec.")
		default:
			level += " " + parent
		}
		if out[level] == nil {
			out[level] = map[string]bool{}
		}
		out[level][key] = true
	}
	return out
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
		// policy checks a traffic policy and, below it, every claimed level
		// that has a level of its own in claimedFields.
		var policy func(level string, m map[string]any, path string)
		policy = func(level string, m map[string]any, path string) {
			check(level, m, path)
			for k, v := range m {
				sub, ok := v.(map[string]any)
				if _, known := claimedFields[level+"."+k]; ok && known {
					policy(level+"."+k, sub, path+"."+k)
				}
			}
		}
		check(kind, spec, "spec")
		if tp, ok := spec["trafficPolicy"].(map[string]any); ok {
			policy(kind+" trafficPolicy", tp, "spec.trafficPolicy")
		}
		each(spec["subsets"], func(s map[string]any) {
			check(kind+" spec.subsets[]", s, "spec.subsets[]")
			if tp, ok := s["trafficPolicy"].(map[string]any); ok {
				policy(kind+" trafficPolicy", tp, "spec.subsets[].trafficPolicy")
			}
		})
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

// undefinedSubsets lists the subsets the VirtualServices of config route
// or mirror to that no DestinationRule of config defines, as "host subsets
// a, b" (Istio's analyzer reports them as IST0101). No implementation can
// serve such a route, so checks through it cannot hold.
func undefinedSubsets(config string) ([]string, error) {
	type doc struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec map[string]any `json:"spec"`
	}
	fqdn := func(host, ns string) string {
		if strings.Contains(host, ".") || strings.HasPrefix(host, "*") {
			return host
		}
		return host + "." + ns + ".svc.cluster.local"
	}
	defined := map[string]map[string]bool{} // DR host -> subsets
	type use struct{ host, subset string }
	var used []use
	rd := k8syaml.NewYAMLReader(bufio.NewReader(strings.NewReader(config)))
	for {
		text, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var d doc
		if err := yaml.Unmarshal(text, &d); err != nil {
			return nil, err
		}
		ns := d.Metadata.Namespace
		if ns == "" {
			ns = "default"
		}
		str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
		dest := func(v any) {
			if m, ok := v.(map[string]any); ok && str(m, "subset") != "" {
				used = append(used, use{fqdn(str(m, "host"), ns), str(m, "subset")})
			}
		}
		list := func(v any) []map[string]any {
			var out []map[string]any
			items, _ := v.([]any)
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					out = append(out, m)
				}
			}
			return out
		}
		switch d.Kind {
		case "DestinationRule":
			host := fqdn(str(d.Spec, "host"), ns)
			if defined[host] == nil {
				defined[host] = map[string]bool{}
			}
			for _, s := range list(d.Spec["subsets"]) {
				defined[host][str(s, "name")] = true
			}
		case "VirtualService":
			for _, kind := range []string{"http", "tcp", "tls"} {
				for _, r := range list(d.Spec[kind]) {
					for _, rt := range list(r["route"]) {
						dest(rt["destination"])
					}
					dest(r["mirror"])
					for _, m := range list(r["mirrors"]) {
						dest(m["destination"])
					}
				}
			}
		}
	}
	missing := map[string][]string{} // host -> subsets
	for _, u := range used {
		found := defined[u.host][u.subset]
		for h, subsets := range defined {
			if strings.HasPrefix(h, "*") && strings.HasSuffix(u.host, h[1:]) && subsets[u.subset] {
				found = true
			}
		}
		if !found {
			missing[u.host] = append(missing[u.host], u.subset)
		}
	}
	var out []string
	for _, h := range slices.Sorted(maps.Keys(missing)) {
		subsets := missing[h]
		sort.Strings(subsets)
		out = append(out, h+" subsets "+strings.Join(dedupe(subsets), ", "))
	}
	return out, nil
}

// istioDeviations are checks whose expectation comes from an artifact of
// Envoy's implementation rather than from the configuration's meaning,
// where sluice does what the configuration says. Like Gateway API
// conformance's SkipTests, they are reported as skipped with the reason,
// never as passed. Keep this list short and every entry argued.
//
// circuit-breaking#1 (2 clients, maxConnections 1, http1MaxPendingRequests 1,
// maxRequestsPerConnection 1) is not one: its 503s come from Envoy counting
// a request as pending while its connection is dialled (each request needs
// a new connection here), which sluice's pool does too. Envoy's per-worker
// connection pools work the other way, as the leeway the task page
// mentions: a worker's pool with no connection may open one over
// maxConnections, so more requests get through than with one pool.
var istioDeviations = map[string]string{}

// enforced reports whether sluice enforces apiVersion/kind (not listed as
// accepted but not enforced).
func enforced(apiVersion, kind string) bool { return !config.KindNotEnforced(apiVersion, kind) }
