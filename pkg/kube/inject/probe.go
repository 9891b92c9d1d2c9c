package inject

import (
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// AgentPort is the proxy agent's port (istio-agent's status port 15020):
// the rewritten app probes and the proxy's own /healthz/ready.
const AgentPort = 15020

// Annotations of the probe rewrite, as Istio's.
const (
	AnnotationRewriteProbers = "sidecar.istio.io/rewriteAppHTTPProbers"
	AnnotationStatusPort     = "status.sidecar.istio.io/port"
	// EnvAppProbers carries the original probes to the proxy.
	EnvAppProbers = "ISTIO_KUBE_APP_PROBERS"
)

// Prober is one original probe as the agent runs it (Istio's
// inject.Prober): the JSON of ISTIO_KUBE_APP_PROBERS maps agent paths
// to these.
type Prober struct {
	HTTPGet        *corev1.HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket      *corev1.TCPSocketAction `json:"tcpSocket,omitempty"`
	GRPC           *corev1.GRPCAction      `json:"grpc,omitempty"`
	TimeoutSeconds int32                   `json:"timeoutSeconds,omitempty"`
}

// AppProbers is ISTIO_KUBE_APP_PROBERS: agent path -> original probe.
type AppProbers map[string]*Prober

// ProbePaths are the agent paths of a container's probes (Istio's
// status.FormatProberURL): /app-health/<container>/readyz|livez|startupz.
func ProbePaths(container string) (readyz, livez, startupz string) {
	base := "/app-health/" + container + "/"
	return base + "readyz", base + "livez", base + "startupz"
}

// LifecyclePaths are the agent paths of a container's preStop and
// postStart HTTP/TCP handlers (status.FormatProberURL too):
// /app-lifecycle/<container>/prestopz|poststartz.
func LifecyclePaths(container string) (prestopz, poststartz string) {
	base := "/app-lifecycle/" + container + "/"
	return base + "prestopz", base + "poststartz"
}

// rewriteProbes is Istio's app_probe.go for liveness, readiness and
// startup probes and preStop/postStart HTTP and TCP handlers: each HTTP, TCP or gRPC probe of an app container is
// recorded (named ports resolved to numbers, a probe already aimed at
// the agent port dropped, as DumpAppProbers) and replaced by an HTTP GET
// of its agent path on the agent port (https becomes http: the agent
// speaks plain HTTP to the kubelet). It returns the JSON for
// ISTIO_KUBE_APP_PROBERS, "" when there is none.
func rewriteProbes(pod *corev1.Pod) (string, error) {
	if v, ok := pod.Annotations[AnnotationRewriteProbers]; ok {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return "", fmt.Errorf("annotation %s=%q: %w", AnnotationRewriteProbers, v, err)
		}
		if !on {
			return "", nil
		}
	}
	port, err := statusPort(pod)
	if err != nil {
		return "", err
	}
	out := AppProbers{}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name != ProxyContainerName {
				rewriteContainer(&list[i], port, out)
			}
		}
	}
	if len(out) == 0 {
		return "", nil
	}
	b, err := json.Marshal(out)
	return string(b), err
}

func statusPort(pod *corev1.Pod) (int32, error) {
	v, ok := pod.Annotations[AnnotationStatusPort]
	if !ok {
		return AgentPort, nil
	}
	p, err := strconv.ParseUint(v, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("annotation %s=%q: not a port", AnnotationStatusPort, v)
	}
	return int32(p), nil
}

func rewriteContainer(c *corev1.Container, port int32, out AppProbers) {
	readyz, livez, startupz := ProbePaths(c.Name)
	named := map[string]int32{}
	for _, p := range c.Ports {
		if p.Name != "" {
			named[p.Name] = p.ContainerPort
		}
	}
	for _, p := range []struct {
		probe **corev1.Probe
		path  string
	}{{&c.ReadinessProbe, readyz}, {&c.LivenessProbe, livez}, {&c.StartupProbe, startupz}} {
		if *p.probe == nil {
			continue
		}
		if pr := recordProbe(*p.probe, named, port); pr != nil {
			out[p.path] = pr
		}
		if np := convertProbe(*p.probe, p.path, port); np != nil {
			*p.probe = np
		}
	}
	if c.Lifecycle == nil {
		return
	}
	prestopz, poststartz := LifecyclePaths(c.Name)
	for _, h := range []struct {
		handler **corev1.LifecycleHandler
		path    string
	}{{&c.Lifecycle.PreStop, prestopz}, {&c.Lifecycle.PostStart, poststartz}} {
		lh := *h.handler
		if lh == nil || (lh.HTTPGet == nil && lh.TCPSocket == nil) {
			continue // exec and sleep handlers run in the container itself
		}
		probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: lh.HTTPGet, TCPSocket: lh.TCPSocket}}
		if pr := recordProbe(probe, named, port); pr != nil {
			out[h.path] = pr
		}
		np := convertProbe(probe, h.path, port)
		nh := lh.DeepCopy()
		nh.HTTPGet, nh.TCPSocket = np.HTTPGet, nil
		*h.handler = nh
	}
}

// recordProbe is Istio's kubeProbeToInternalProber plus updateNamedPort.
func recordProbe(probe *corev1.Probe, named map[string]int32, agent int32) *Prober {
	pr := &Prober{TimeoutSeconds: probe.TimeoutSeconds}
	var port *intstr.IntOrString
	switch {
	case probe.HTTPGet != nil:
		pr.HTTPGet = probe.HTTPGet.DeepCopy()
		port = &pr.HTTPGet.Port
	case probe.TCPSocket != nil:
		pr.TCPSocket = probe.TCPSocket.DeepCopy()
		port = &pr.TCPSocket.Port
	case probe.GRPC != nil:
		pr.GRPC = probe.GRPC.DeepCopy()
		return pr
	default:
		return nil
	}
	if port.Type == intstr.String {
		n, ok := named[port.StrVal]
		if !ok {
			return nil
		}
		*port = intstr.FromInt32(n)
	} else if port.IntVal == agent {
		return nil
	}
	return pr
}

// convertProbe is Istio's convertAppProber: the probe's timing kept, its
// action an HTTP GET of path on the agent port.
func convertProbe(probe *corev1.Probe, path string, port int32) *corev1.Probe {
	if probe.HTTPGet == nil && probe.TCPSocket == nil && probe.GRPC == nil {
		return nil
	}
	p := probe.DeepCopy()
	get := &corev1.HTTPGetAction{}
	if p.HTTPGet != nil {
		get = p.HTTPGet
	}
	get.Port = intstr.FromInt32(port)
	get.Path = path
	if get.Scheme == corev1.URISchemeHTTPS {
		get.Scheme = corev1.URISchemeHTTP
	}
	p.HTTPGet, p.TCPSocket, p.GRPC = get, nil, nil
	return p
}
