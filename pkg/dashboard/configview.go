package dashboard

import (
	"sort"
	"strings"

	"github.com/sluice-mesh/sluice/pkg/analysis"
	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// Config entry statuses.
const (
	StatusValid       = "valid"
	StatusWarning     = "warning"
	StatusError       = "error"
	StatusNotEnforced = "not enforced"
)

// ConfigInput is the control plane's current config: what was admitted,
// what was rejected and what is accepted but not enforced.
type ConfigInput struct {
	Resources   []*config.Resource
	Errors      config.Errors
	NotEnforced []config.NotEnforced
	// Analysis is the control plane's newest analysis (sluice analyze's
	// analyzers), by resource ("Kind ns/name").
	Analysis map[string][]analysis.Finding
}

// ConfigEntry is one resource with its validation messages.
type ConfigEntry struct {
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name,omitempty"`
	File      string   `json:"file"`
	Status    string   `json:"status"`
	Messages  []string `json:"messages"`
}

// ConfigEntries lists every resource with its messages: Istio's
// validation warnings for admitted ones, the error for rejected ones (an
// admitted resource with an error is the last good version of an invalid
// edit), the reason for not-enforced ones, and the analysis' messages
// ("Warning [IST0101] ...": a valid resource with a Warning or Error one is
// shown as a warning, being in force). Sorted by kind, namespace,
// name; errors that name no resource come last.
func ConfigEntries(in ConfigInput) []ConfigEntry {
	byKey := map[config.Key]*ConfigEntry{}
	out := []*ConfigEntry{}
	for _, r := range in.Resources {
		e := &ConfigEntry{Kind: string(r.Kind), Namespace: r.Namespace, Name: r.Name, File: r.Source.String(), Status: StatusValid, Messages: []string{}}
		for _, w := range config.Warnings(r) {
			e.Status = StatusWarning
			e.Messages = append(e.Messages, "warning: "+w.Error())
		}
		byKey[r.Key()] = e
		out = append(out, e)
	}
	var loose []*ConfigEntry
	for _, err := range in.Errors {
		e := byKey[err.Key]
		if e == nil || err.Key.Kind == "" {
			e = &ConfigEntry{Kind: string(err.Key.Kind), Namespace: err.Key.Namespace, Name: err.Key.Name, File: err.Source.String(), Messages: []string{}}
			if err.Key.Kind == "" {
				loose = append(loose, e)
			} else {
				byKey[err.Key] = e
				out = append(out, e)
			}
		} else {
			e.Messages = append(e.Messages, "the last valid version is in force")
		}
		e.Status = StatusError
		e.Messages = append(e.Messages, err.Error())
	}
	for _, ne := range in.NotEnforced {
		out = append(out, &ConfigEntry{Kind: ne.Kind, Namespace: ne.Namespace, Name: ne.Name, File: ne.File,
			Status: StatusNotEnforced, Messages: []string{ne.Reason}})
	}
	addAnalysis(out, in.Analysis)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	res := make([]ConfigEntry, 0, len(out)+len(loose))
	for _, e := range append(out, loose...) {
		res = append(res, *e)
	}
	return res
}

// addAnalysis appends each entry's analysis messages.
func addAnalysis(entries []*ConfigEntry, byResource map[string][]analysis.Finding) {
	if len(byResource) == 0 {
		return
	}
	for _, e := range entries {
		ref := analysis.ResourceRef{Kind: e.Kind, Namespace: e.Namespace, Name: e.Name}
		for _, f := range byResource[ref.String()] {
			e.Messages = append(e.Messages, f.Level+" ["+f.Code+"] "+f.Message)
			if e.Status == StatusValid && f.Level != analysis.LevelInfo.String() {
				e.Status = StatusWarning
			}
		}
	}
}

// ConfigRef names a resource that applies to a service or workload, and
// how.
type ConfigRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Role says how it applies ("routes", "traffic policy", "ALLOW", ...).
	Role string `json:"role"`
}

func ref(r *config.Resource, role string) ConfigRef {
	return ConfigRef{Kind: string(r.Kind), Namespace: r.Namespace, Name: r.Name, Role: role}
}

// serviceConfig is what applies to traffic to host, seen from the
// service's namespace: the mesh VirtualServices whose hosts match it and
// the DestinationRule Istio picks (PushContext.DestinationRule).
func serviceConfig(pc *model.PushContext, host string) []ConfigRef {
	out := []ConfigRef{}
	if pc == nil {
		return out
	}
	ns := namespaceOfHost(host)
	for _, vs := range pc.VirtualServicesFor(model.GatewayMesh, ns) {
		for _, h := range vs.Hosts {
			if config.HostMatches(h, host) {
				out = append(out, ref(vs.Resource, "routes (mesh)"))
				break
			}
		}
	}
	if dr := pc.DestinationRule(ns, host, ns); dr != nil {
		out = append(out, ref(dr.Resource, "traffic policy"))
	}
	return out
}

// workloadConfig is what applies to a workload (namespace and labels):
// the Sidecar its sidecar is scoped by, its PeerAuthentications (as
// composed), RequestAuthentications and AuthorizationPolicies by action.
func workloadConfig(pc *model.PushContext, ns string, labels map[string]string) []ConfigRef {
	out := []ConfigRef{}
	if pc == nil {
		return out
	}
	if sc := pc.SidecarScope(&model.Proxy{Type: model.Sidecar, Namespace: ns, Labels: labels}); sc != nil && sc.Resource != nil {
		out = append(out, ref(sc.Resource, "sidecar scope"))
	}
	for _, from := range pc.PeerAuthenticationFor(ns, labels).From {
		level, name, _ := strings.Cut(from, " ")
		pns, pname, _ := strings.Cut(name, "/")
		out = append(out, ConfigRef{Kind: string(config.KindPeerAuthentication), Namespace: pns, Name: pname, Role: "mTLS (" + level + ")"})
	}
	m := model.PolicyMatcher{Namespace: ns, Labels: labels}
	for _, ra := range pc.RequestAuthenticationsFor(m) {
		out = append(out, ref(ra.Resource, "request authentication"))
	}
	aps := pc.AuthorizationPoliciesFor(m)
	for _, list := range []struct {
		role string
		ps   []*model.AuthorizationPolicy
	}{{"CUSTOM", aps.Custom}, {"DENY", aps.Deny}, {"ALLOW", aps.Allow}, {"AUDIT", aps.Audit}} {
		for _, p := range list.ps {
			out = append(out, ref(p.Resource, "authorization "+list.role))
		}
	}
	return out
}

// namespaceOfHost is ns of name.ns.svc.<domain>, else "".
func namespaceOfHost(host string) string {
	if parts := strings.Split(host, "."); len(parts) > 2 && parts[2] == "svc" {
		return parts[1]
	}
	return ""
}
