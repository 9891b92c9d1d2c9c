package analysis

import (
	"istio.io/api/label"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// podSpec is a Pod object's spec (its Spec is the whole *corev1.Pod, as
// pkg/config decodes Pods); an empty one for anything else, never a panic.
func podSpec(pod *Object) *corev1.PodSpec {
	if p, ok := pod.Spec.(*corev1.Pod); ok {
		return &p.Spec
	}
	return &corev1.PodSpec{}
}

// podInMesh is util.PodInMesh (analyzers/util/in_mesh.go).
func podInMesh(c *Context, pod *Object) bool {
	spec := podSpec(pod)
	containers := append(append([]corev1.Container(nil), spec.Containers...), spec.InitContainers...)
	return inMesh(c, pod.Annotations, pod.Labels, pod.Namespace, containers)
}

// deploymentInMesh is util.DeploymentInMesh: its pod template's.
func deploymentInMesh(c *Context, d *Object) bool {
	t := d.Spec.(*appsv1.DeploymentSpec).Template
	return inMesh(c, t.Annotations, t.Labels, d.Namespace, t.Spec.Containers)
}

// inMesh: the first istio-proxy container has an image, or the
// sidecar.istio.io/inject label (then annotation) says so, or the
// namespace is labelled istio-injection=enabled.
func inMesh(c *Context, annotations, labels map[string]string, ns string, containers []corev1.Container) bool {
	for _, ct := range containers {
		if ct.Name == "istio-proxy" {
			if ct.Image != "" {
				return true
			}
			break
		}
	}
	if v, ok := labels[label.SidecarInject.Name]; ok {
		return v == "true"
	}
	if v, ok := annotations[label.SidecarInject.Name]; ok {
		return v == "true"
	}
	if n := c.Find(config.KindNamespace, "", ns); n != nil {
		return n.Labels[injectionLabel] == "enabled"
	}
	return false
}

// podInAmbient is util.PodInAmbientMode.
func podInAmbient(pod *Object) bool {
	return pod.Annotations[ambientRedirectionAnnotation] == "enabled"
}
