package nodeagent

import (
	"fmt"
	"strconv"
	"strings"

	"istio.io/api/annotation"
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/capture"
)

// Dataplane-mode values (Istio pkg/config/constants: DataplaneModeAmbient,
// DataplaneModeNone) and the redirection annotation's value
// (AmbientRedirectionEnabled).
const (
	dataplaneModeAmbient = "ambient"
	dataplaneModeNone    = "none"
	redirectionEnabled   = "enabled"
)

// ShouldEnroll is istio-cni's decision that a pod belongs in ambient mode
// (cni/pkg/util/enablement_selector.go Matches with the chart's default
// ambient.enablementSelectors, manifests/charts/istio-cni/values.yaml):
// the pod is labelled istio.io/dataplane-mode=ambient, or its namespace is
// and the pod is not labelled istio.io/dataplane-mode=none. A pod on the
// host's network or with a sidecar (sidecar.istio.io/status) is never
// enrolled: ztunnel and a sidecar for one pod are not supported.
func ShouldEnroll(pod *corev1.Pod, namespaceLabels map[string]string) bool {
	if pod.Spec.HostNetwork {
		return false
	}
	if _, sidecar := pod.Annotations[annotation.SidecarStatus.Name]; sidecar {
		return false
	}
	mode := pod.Labels[label.IoIstioDataplaneMode.Name]
	if mode == dataplaneModeAmbient {
		return true
	}
	return mode != dataplaneModeNone && namespaceLabels[label.IoIstioDataplaneMode.Name] == dataplaneModeAmbient
}

// Terminal: the pod's phase is Succeeded or Failed (Istio pkg/kube
// CheckPodTerminal); its capture is undone.
func Terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// PodIPs are the pod's addresses, status.podIPs preferred over
// status.podIP (istio-cni util.GetPodIPsIfPresent). A pod without one is
// not captured yet: its network is not set up.
func PodIPs(pod *corev1.Pod) []string {
	var ips []string
	for _, ip := range pod.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = []string{pod.Status.PodIP}
	}
	return ips
}

// Enrolled: the pod carries ambient.istio.io/redirection: enabled
// (istio-cni util.PodFullyEnrolled).
func Enrolled(pod *corev1.Pod) bool {
	return pod.Annotations[annotation.AmbientRedirection.Name] == redirectionEnabled
}

// CaptureOptions are the pod's in-pod capture settings from its
// annotations, as istio-cni's getPodLevelTrafficOverrides
// (cni/pkg/nodeagent/net.go) reads them: ambient.istio.io/bypass-inbound-capture
// (no inbound capture) and istio.io/reroute-virtual-interfaces. DNS
// capture is refused (sluice's node proxy has no DNS proxy):
// ambient.istio.io/dns-capture "true" is an error; "false" is what
// happens anyway.
func CaptureOptions(pod *corev1.Pod, base capture.InpodOptions) (capture.InpodOptions, error) {
	o := base
	o.VirtualInterfaces = append([]string(nil), base.VirtualInterfaces...)
	where := fmt.Sprintf("pod %s/%s", pod.Namespace, pod.Name)
	if v, ok := pod.Annotations[annotation.AmbientBypassInboundCapture.Name]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("%s: annotation %s: %q is not a boolean", where, annotation.AmbientBypassInboundCapture.Name, v)
		}
		o.IngressMode = b
	}
	if v, ok := pod.Annotations[annotation.AmbientDnsCapture.Name]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("%s: annotation %s: %q is not a boolean", where, annotation.AmbientDnsCapture.Name, v)
		}
		if b {
			return o, fmt.Errorf("%s: annotation %s: true is not supported (sluice's node proxy has no DNS proxy)", where, annotation.AmbientDnsCapture.Name)
		}
	}
	if v, ok := pod.Annotations[annotation.IoIstioRerouteVirtualInterfaces.Name]; ok {
		for _, vif := range strings.Split(v, ",") {
			if vif = strings.TrimSpace(vif); vif != "" {
				o.VirtualInterfaces = append(o.VirtualInterfaces, vif)
			}
		}
	}
	return o, nil
}
