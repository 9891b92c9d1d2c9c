package inject

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	jsonpatch "gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// Status is the sidecar.istio.io/status annotation's JSON (Istio's
// SidecarInjectionStatus), naming what injection added so it can be
// recognised and removed.
type Status struct {
	InitContainers   []string `json:"initContainers"`
	Containers       []string `json:"containers"`
	Volumes          []string `json:"volumes"`
	ImagePullSecrets []string `json:"imagePullSecrets"`
	Revision         string   `json:"revision"`
}

// Labels injection adds (Istio's: the mTLS mode peers use for auto mTLS
// and the canonical service).
const (
	LabelTLSMode           = "security.istio.io/tlsMode"
	LabelCanonicalName     = "service.istio.io/canonical-name"
	LabelCanonicalRevision = "service.istio.io/canonical-revision"
)

// Inject returns the pod with the sidecar: a mutated deep copy, the
// input untouched. namespace is the pod's (an admitted pod's object may
// not carry it yet). An annotation it cannot honour is an error naming
// it, never ignored.
func Inject(in *corev1.Pod, namespace string, cfg Config) (*corev1.Pod, error) {
	pod := in.DeepCopy()
	if err := checkCaptureAnnotations(pod); err != nil {
		return nil, err
	}
	pc, err := proxyConfig(pod, cfg.ProxyConfig)
	if err != nil {
		return nil, err
	}
	probers, err := rewriteProbes(pod)
	if err != nil {
		return nil, err
	}
	// The labels first: the proxy announces the pod's labels as stored.
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	if pod.Labels[LabelTLSMode] == "" { // the template's `| default "istio"`
		pod.Labels[LabelTLSMode] = "istio"
	}
	name, rev := canonicalService(pod)
	pod.Labels[LabelCanonicalName], pod.Labels[LabelCanonicalRevision] = name, rev
	sc, err := mergeOverride(pod, cfg.sidecar(pod, probers, pc))
	if err != nil {
		return nil, err
	}
	status := Status{Revision: cfg.revision()}
	// The capture init container first, then (native) the proxy, so the
	// app's init containers run captured with the proxy up, as Istio's
	// template orders istio-init and istio-proxy.
	var inits []corev1.Container
	if ci, ok := cfg.captureInit(pod); ok {
		if ci, err = mergeOverride(pod, ci); err != nil {
			return nil, err
		}
		inits = append(inits, ci)
		status.InitContainers = append(status.InitContainers, CaptureContainerName)
	}
	if cfg.NativeSidecar {
		inits = append(inits, sc)
		status.InitContainers = append(status.InitContainers, ProxyContainerName)
	} else {
		pod.Spec.Containers = append(pod.Spec.Containers, sc)
		status.Containers = []string{ProxyContainerName}
	}
	if len(inits) > 0 {
		pod.Spec.InitContainers = append(inits, pod.Spec.InitContainers...)
	}
	for _, v := range volumes() {
		pod.Spec.Volumes = append(pod.Spec.Volumes, v)
		status.Volumes = append(status.Volumes, v.Name)
	}
	b, err := json.Marshal(status)
	if err != nil {
		return nil, err
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationStatus] = string(b)
	prometheusAnnotations(pod.Annotations)
	if pod.Namespace == "" {
		pod.Namespace = namespace
	}
	return pod, nil
}

// prometheusAnnotations are Istio's prometheus.io/* scrape annotations
// without the metrics merge (the agent does not merge the app's metrics
// into its own): the proxy's metrics port is announced unless the pod
// has its own scrape annotations, which are left as they are (Istio
// keeps them too, for its merge; here they win), and "false" keeps the
// pod unscraped.
func prometheusAnnotations(a map[string]string) {
	if _, ok := a["prometheus.io/scrape"]; ok {
		return
	}
	a["prometheus.io/scrape"] = "true"
	a["prometheus.io/port"] = fmt.Sprint(MetricsPort)
	a["prometheus.io/path"] = "/stats/prometheus"
}

// canonicalService is Istio's labels.CanonicalService: the name from
// service.istio.io/canonical-name, app.kubernetes.io/name, app, else the
// workload name (generateName without the ReplicaSet hashes is the
// owner's; the pod name otherwise); the revision from
// service.istio.io/canonical-revision, app.kubernetes.io/version,
// version, else "latest".
func canonicalService(pod *corev1.Pod) (name, rev string) {
	name = first(pod.Labels, LabelCanonicalName, "app.kubernetes.io/name", "app")
	if name == "" {
		name = workloadName(pod)
	}
	rev = first(pod.Labels, LabelCanonicalRevision, "app.kubernetes.io/version", "version")
	if rev == "" {
		rev = "latest"
	}
	return name, rev
}

func first(l map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := l[k]; v != "" {
			return v
		}
	}
	return ""
}

// workloadName: a Deployment's pod is named <deployment>-<rs hash>-<pod
// hash>, its generateName <deployment>-<rs hash>-; other controllers'
// <owner>-. As Istio's kube.WorkloadNameFromWorkloadEntry/GetDeployMetaFromPod,
// the ReplicaSet's owner is read from the pod-template-hash label.
func workloadName(pod *corev1.Pod) string {
	gen := strings.TrimSuffix(pod.GenerateName, "-")
	if gen == "" {
		return pod.Name
	}
	if h := pod.Labels["pod-template-hash"]; h != "" {
		return strings.TrimSuffix(gen, "-"+h)
	}
	return gen
}

// mergeOverride: a container named as the template's (istio-proxy,
// istio-init) in the pod is the user's override of it, as Istio's (reinsertOverrides and
// applyOverlay in pkg/kube/inject): it is merged over the template's
// container with Kubernetes' strategic merge (its fields win; env,
// ports and mounts merged by name) and removed from its list, the
// merged container taking the proxy's place.
func mergeOverride(pod *corev1.Pod, tmpl corev1.Container) (corev1.Container, error) {
	var user *corev1.Container
	for _, list := range []*[]corev1.Container{&pod.Spec.Containers, &pod.Spec.InitContainers} {
		for i := range *list {
			if (*list)[i].Name == tmpl.Name {
				c := (*list)[i]
				user = &c
				*list = append((*list)[:i:i], (*list)[i+1:]...)
				break
			}
		}
	}
	if user == nil {
		return tmpl, nil
	}
	base, err := json.Marshal(tmpl)
	if err != nil {
		return tmpl, err
	}
	over, err := json.Marshal(user)
	if err != nil {
		return tmpl, err
	}
	merged, err := strategicpatch.StrategicMergePatch(base, over, corev1.Container{})
	if err != nil {
		return tmpl, fmt.Errorf("container %s (the pod's override of the template's): %w", tmpl.Name, err)
	}
	var out corev1.Container
	if err := json.Unmarshal(merged, &out); err != nil {
		return tmpl, err
	}
	return out, nil
}

// Patch is the JSON patch (RFC 6902) turning original into mutated, as
// Istio's webhook computes it (jsonpatch.CreatePatch over the two pods'
// JSON).
func Patch(original, mutated *corev1.Pod) ([]byte, error) {
	a, err := json.Marshal(original)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(mutated)
	if err != nil {
		return nil, err
	}
	ops, err := jsonpatch.CreatePatch(a, b)
	if err != nil {
		return nil, fmt.Errorf("json patch: %w", err)
	}
	return json.Marshal(ops)
}

func checkCIDRs(v string) error {
	for _, c := range strings.Split(v, ",") {
		if _, err := netip.ParsePrefix(strings.TrimSpace(c)); err != nil {
			return err
		}
	}
	return nil
}
