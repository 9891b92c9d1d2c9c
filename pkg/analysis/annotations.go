package analysis

import (
	"slices"
	"sort"
	"strings"

	"istio.io/api/annotation"
	"istio.io/api/label"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/annotations/annotations.go,
// over istio.io/api's annotation table. Istio's check of annotation values
// (IST0125 InvalidAnnotation, pkg/kube/inject AnnotationValidation) is
// not ported: sluice injects no sidecars.
func init() {
	register(&Analyzer{
		Name:        "annotations.K8sAnalyzer",
		Description: "Checks for misplaced and invalid Istio annotations in Kubernetes resources",
		Codes:       []string{"IST0107", "IST0108", "IST0135"},
		run: func(c *Context) {
			for _, kind := range []config.Kind{config.KindNamespace, config.KindService, KindPod, KindDeployment} {
				for _, o := range c.Objects(kind) {
					checkAnnotations(c, o, string(kind))
				}
			}
		},
	})
}

// ignoredAnnotations are set by Istio itself (maturity.AlwaysIgnoredAnnotations).
var ignoredAnnotations = map[string]bool{
	annotation.SidecarStatus.Name:            true,
	annotation.GatewayControllerVersion.Name: true,
	annotation.IoIstioRev.Name:               true,
}

var deprecationExtra = map[string]string{
	annotation.SidecarInject.Name: ` in favor of the "sidecar.istio.io/inject" label`,
}

func checkAnnotations(c *Context, o *Object, kind string) {
	names := make([]string, 0, len(o.Annotations))
	for ann := range o.Annotations {
		names = append(names, ann)
	}
	sort.Strings(names)
	for _, ann := range names {
		if !istioAnnotation(ann) || ignoredAnnotations[ann] {
			continue
		}
		path := sprintf("{.metadata.annotations.%s}", ann)
		def := lookupAnnotation(ann)
		if def == nil {
			c.report(UnknownAnnotation, o, path, ann)
			continue
		}
		if def.Deprecated {
			// Both the deprecated annotation and its replacement label: the
			// user knows; no noise (as Istio).
			if _, replaced := o.Labels[label.SidecarInject.Name]; !(replaced && ann == annotation.SidecarInject.Name) {
				c.report(DeprecatedAnnotation, o, path, ann, deprecationExtra[def.Name])
			}
		}
		if slices.Contains(def.Resources, annotation.Any) {
			continue
		}
		var attaches []string
		for _, rt := range def.Resources {
			if s := rt.String(); s != "Unknown" {
				attaches = append(attaches, s)
			}
		}
		if !slices.Contains(attaches, kind) {
			c.report(MisplacedAnnotation, o, path, ann, strings.Join(attaches, ", "))
		}
	}
}

// istioAnnotation is true for annotations in Istio's namespaces, and the
// Kubernetes ingress class annotation Istio documents.
func istioAnnotation(ann string) bool {
	if ann == "kubernetes.io/ingress.class" {
		return true
	}
	prefix, _, _ := strings.Cut(ann, "/")
	return strings.HasSuffix(prefix, "istio.io")
}

func lookupAnnotation(ann string) *annotation.Instance {
	for _, a := range annotation.AllResourceAnnotations() {
		if a.Name == ann {
			return a
		}
	}
	return nil
}
