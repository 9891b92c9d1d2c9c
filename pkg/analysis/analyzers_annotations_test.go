package analysis

import (
	"fmt"
	"testing"
)

func annotatedPod(annotations, labels string) string {
	return fmt.Sprintf("\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: default\n  labels: {%s}\n  annotations: {%s}\nspec:\n  containers: [{name: app, image: app}]\n", labels, annotations)
}

func TestK8sAnnotationsAnalyzer(t *testing.T) {
	runAnalyzerTable(t, "annotations.K8sAnalyzer", []analyzerCase{
		{"known pod annotation", annotatedPod("sidecar.istio.io/proxyCPU: 100m, example.com/other: x", ""), nil},
		{"unknown istio annotation", annotatedPod("sidecar.istio.io/bogus: x", ""), []string{
			"IST0108 Pod default/p: Unknown annotation: sidecar.istio.io/bogus",
		}},
		{"misplaced", "\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: default\n  annotations: {sidecar.istio.io/proxyCPU: 100m}\nspec:\n  ports: [{name: http, port: 80}]\n", []string{
			"IST0107 Service default/s: Misplaced annotation: sidecar.istio.io/proxyCPU can only be applied to Pod",
		}},
		{"deprecated", annotatedPod("sidecar.istio.io/inject: 'true'", ""), []string{
			`IST0135 Pod default/p: Annotation "sidecar.istio.io/inject" has been deprecated in favor of the "sidecar.istio.io/inject" label and may not work in future Istio versions.`,
		}},
		{"deprecated with its replacement label", annotatedPod("sidecar.istio.io/inject: 'true'", "sidecar.istio.io/inject: 'true'"), nil},
		{"set by istio", annotatedPod("sidecar.istio.io/status: '{}'", ""), nil},
	})
}
