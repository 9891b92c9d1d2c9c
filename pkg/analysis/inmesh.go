package analysis

import (
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// podInMesh is util.PodInMesh (analyzers/util/in_mesh.go): the pod has an
// istio-proxy container, or the sidecar.istio.io/inject label (then the
// annotation) says so, or its namespace is labelled istio-injection=enabled.
func podInMesh(c *Context, pod *Object) bool {
	spec := pod.Spec.(*corev1.PodSpec)
	for _, ct := range append(append([]corev1.Container(nil), spec.Containers...), spec.InitContainers...) {
		if ct.Name == "istio-proxy" {
			if ct.Image != "" {
				return true
			}
			break // the first istio-proxy container decides (hasIstioProxy)
		}
	}
	if v, ok := pod.Labels[label.SidecarInject.Name]; ok {
		return v == "true"
	}
	if v, ok := pod.Annotations[label.SidecarInject.Name]; ok {
		return v == "true"
	}
	if ns := c.Find(config.KindNamespace, "", pod.Namespace); ns != nil {
		return ns.Labels[injectionLabel] == "enabled"
	}
	return false
}

// podInAmbient is util.PodInAmbientMode.
func podInAmbient(pod *Object) bool {
	return pod.Annotations[ambientRedirectionAnnotation] == "enabled"
}
