package analysis

import (
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/authz/authorizationpolicies.go.
func init() {
	register(&Analyzer{
		Name:        "auth.AuthorizationPoliciesAnalyzer",
		Workloads:   true,
		Aliases:     []string{"authz.AuthorizationPoliciesAnalyzer"},
		Description: "Checks the validity of authorization policies",
		Codes:       []string{"IST0101", "IST0127"},
		run:         analyzeAuthorizationPolicies,
	})
}

func analyzeAuthorizationPolicies(c *Context) {
	// In-mesh (or ambient) pods' labels by namespace (initPodLabelsMap).
	pods := map[string][]map[string]string{}
	for _, p := range c.Objects(KindPod) {
		if podInMesh(c, p) || podInAmbient(p) {
			pods[p.Namespace] = append(pods[p.Namespace], p.Labels)
		}
	}
	for _, o := range c.Objects(config.KindAuthorizationPolicy) {
		ap := o.Spec.(*securityv1beta1.AuthorizationPolicy)
		policyWorkloads(c, o, ap, pods)
		policyNamespaces(c, o, ap)
	}
}

// policyWorkloads reports a policy that applies to no in-mesh pod: a
// selector in the root namespace matching none anywhere, a namespace
// policy in a namespace without pods, a selector matching none in its
// namespace (analyzeNoMatchingWorkloads).
func policyWorkloads(c *Context, o *Object, ap *securityv1beta1.AuthorizationPolicy, pods map[string][]map[string]string) {
	root := c.Mesh.GetRootNamespace()
	if root != "" && o.Namespace == root {
		if ap.GetSelector() == nil {
			return
		}
		for _, list := range pods {
			if anyMatch(ap.GetSelector().GetMatchLabels(), list) {
				return
			}
		}
		c.report(NoMatchingWorkloadsFound, o, "", selectorString(ap.GetSelector().GetMatchLabels()))
		return
	}
	if ap.GetSelector() == nil {
		if len(pods[o.Namespace]) == 0 {
			c.report(NoMatchingWorkloadsFound, o, "", "")
		}
		return
	}
	if !anyMatch(ap.GetSelector().GetMatchLabels(), pods[o.Namespace]) {
		c.report(NoMatchingWorkloadsFound, o, "", selectorString(ap.GetSelector().GetMatchLabels()))
	}
}

func anyMatch(selector map[string]string, labels []map[string]string) bool {
	for _, l := range labels {
		if selects(selector, l) {
			return true
		}
	}
	return false
}

// policyNamespaces reports each source namespace (or notNamespace) that
// matches no Namespace of the input (analyzeNamespaceNotFound).
func policyNamespaces(c *Context, o *Object, ap *securityv1beta1.AuthorizationPolicy) {
	for i, rule := range ap.Rules {
		for j, from := range rule.From {
			src := from.GetSource()
			for k, ns := range append(append([]string(nil), src.GetNamespaces()...), src.GetNotNamespaces()...) {
				if namespaceDeclared(c, ns) {
					continue
				}
				if k >= len(src.GetNamespaces()) {
					k -= len(src.GetNamespaces())
				}
				c.report(ReferencedResourceNotFound, o, sprintf("{.spec.rules[%d].from[%d].source.namespaces[%d]}", i, j, k), "namespace", ns)
			}
		}
	}
}

func namespaceDeclared(c *Context, exp string) bool {
	for _, ns := range c.Objects(config.KindNamespace) {
		if namespaceMatch(ns.Name, exp) {
			return true
		}
	}
	return false
}

// namespaceMatch matches a namespace against "*", "prefix*", "*suffix" or
// a name, case-insensitively for names, as Istio's analyzer.
func namespaceMatch(ns, exp string) bool {
	if exp == "*" {
		return true
	}
	if after, ok := strings.CutPrefix(exp, "*"); ok {
		return strings.HasSuffix(ns, after)
	}
	if before, ok := strings.CutSuffix(exp, "*"); ok {
		return strings.HasPrefix(ns, before)
	}
	return strings.EqualFold(ns, exp)
}
