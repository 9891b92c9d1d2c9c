package inject

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluice-mesh/sluice/pkg/version"
)

// Names the template gives, as Istio's injection-template.yaml.
const (
	ProxyContainerName   = "istio-proxy"
	CaptureContainerName = "istio-init"
	ProxyUID             = int64(1337)
	VolumeToken          = "istio-token"
	VolumeRootCert       = "istiod-ca-cert"
	TokenAudience        = "istio-ca"
	TokenPath            = "/var/run/secrets/tokens"
	RootCertPath         = "/var/run/secrets/istio"
	// RootCertConfigMap is the per-namespace ConfigMap holding the mesh's
	// root certificate (istiod's namespace controller writes it).
	RootCertConfigMap = "istio-ca-root-cert"
	MetricsPort       = 15090
)

// DefaultXDSAddress is istiod's xDS/CA port as pods reach it.
const DefaultXDSAddress = "istiod.istio-system.svc:15012"

// XDSAddress is the xDS/CA address pods reach the control plane of
// revision in namespace at: its Service istiod[-<revision>], port 15012,
// as Istio's injection template sets discoveryAddress
// (istiod-<rev>.<namespace>.svc:15012).
func XDSAddress(revision, namespace string) string {
	if namespace == "" {
		namespace = "istio-system"
	}
	return WebhookOptions{Revision: revision, Namespace: namespace}.ServiceName() + "." + namespace + ".svc:15012"
}

// DefaultImage is the sluice image of this build.
func DefaultImage() string { return "ghcr.io/sluice-mesh/sluice:" + version.Get() }

// Config is what the template needs besides the pod (Istio's sidecar
// injector values: global.proxy, the discovery address, the revision).
type Config struct {
	// Image is the sluice image the proxy runs.
	Image string
	// XDSAddress is the control plane's xDS/CA address as the pod dials
	// it (istiod.istio-system.svc:15012).
	XDSAddress string
	// TrustDomain is the mesh's (meshConfig.trustDomain).
	TrustDomain string
	// Revision is the control plane's revision ("" = default).
	Revision string
	// NativeSidecar runs the proxy as an init container with
	// restartPolicy Always (Kubernetes 1.29+ sidecar containers), started
	// before and stopped after the app; else as a regular container.
	NativeSidecar bool
	// ProxyConfig is the mesh's meshConfig.defaultConfig (nil: none): its
	// concurrency, with a pod's proxy.istio.io/config annotation over it,
	// becomes the proxy's --concurrency (proxyConfig).
	ProxyConfig *meshv1alpha1.ProxyConfig
}

func (c Config) revision() string {
	if c.Revision == "" {
		return DefaultRevision
	}
	return c.Revision
}

// proxyArgs are the `sluice proxy` flags: identity from the downward API
// env (the pod's name is not known when a controller's pod is admitted),
// labels from the pod as admitted, the agent on all addresses so the
// kubelet reaches the rewritten probes; --concurrency from the pod's
// effective ProxyConfig pc.
func (c Config) proxyArgs(pod *corev1.Pod, pc *meshv1alpha1.ProxyConfig) []string {
	args := []string{"proxy", "--type", "sidecar",
		"--name", "$(POD_NAME)", "--namespace", "$(POD_NAMESPACE)",
		"--service-account", "$(SERVICE_ACCOUNT)", "--ip", "$(INSTANCE_IP)",
		"--labels", labelsFlag(pod.Labels),
		"--xds-address", c.XDSAddress, "--trust-domain", c.TrustDomain,
		"--token-file", TokenPath + "/" + VolumeToken,
		"--ca-root-file", RootCertPath + "/root-cert.pem",
		"--admin-address", "127.0.0.1:15000",
		"--agent-address", "0.0.0.0:" + strconv.Itoa(AgentPort),
		"--metrics-address", "0.0.0.0:" + strconv.Itoa(MetricsPort),
		// The capture init container redirects the pod's traffic (unless
		// its interception mode is NONE): the sidecar then serves Istio's
		// capture layout (virtualOutbound :15001, virtualInbound :15006),
		// announced as INTERCEPTION_MODE as Istio's agent does.
		"--interception-mode", interceptionMode(pod),
	}
	return append(args, concurrencyArgs(pc)...)
}

// labelsFlag is --labels k=v,k=v, sorted. Label keys and values cannot
// hold ',' or '=' (Kubernetes' label syntax), so the form is unambiguous.
func labelsFlag(l map[string]string) string {
	keys := slices.Sorted(maps.Keys(l))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
}

// sidecar is the istio-proxy container of Istio's template: uid/gid
// 1337, no privilege, read-only root, the token and root certificate
// mounted, ready when the proxy has its config. pc is the pod's
// effective ProxyConfig.
func (c Config) sidecar(pod *corev1.Pod, probers string, pc *meshv1alpha1.ProxyConfig) corev1.Container {
	uid, yes, no := ProxyUID, true, false
	ready := &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(AgentPort)}},
		PeriodSeconds: 15, TimeoutSeconds: 3, FailureThreshold: 4,
	}
	ct := corev1.Container{
		Name:  ProxyContainerName,
		Image: c.Image,
		Args:  c.proxyArgs(pod, pc),
		Ports: []corev1.ContainerPort{{Name: "http-envoy-prom", ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP}},
		Env: []corev1.EnvVar{
			fieldEnv("POD_NAME", "metadata.name"), fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			fieldEnv("INSTANCE_IP", "status.podIP"), fieldEnv("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		},
		ReadinessProbe: ready,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser: &uid, RunAsGroup: &uid, RunAsNonRoot: &yes, AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem: &yes, Privileged: &no,
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: VolumeToken, MountPath: TokenPath},
			{Name: VolumeRootCert, MountPath: RootCertPath},
		},
		Resources: corev1.ResourceRequirements{},
	}
	if probers != "" {
		ct.Env = append(ct.Env, corev1.EnvVar{Name: EnvAppProbers, Value: probers})
	}
	if c.NativeSidecar {
		always := corev1.ContainerRestartPolicyAlways
		ct.RestartPolicy = &always
		// As Istio's native sidecar: the app containers start once the
		// proxy has its config.
		ct.StartupProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(AgentPort)}},
			PeriodSeconds: 1, TimeoutSeconds: 3, FailureThreshold: 600,
		}
	}
	return ct
}

// volumes are the template's: the projected service account token for
// audience istio-ca (what the CA checks), the root certificate
// ConfigMap (the proxy writes nothing to disk: no writable volume).
func volumes() []corev1.Volume {
	exp := int64(43200)
	return []corev1.Volume{
		{Name: VolumeToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: TokenAudience, ExpirationSeconds: &exp, Path: VolumeToken}}}}}},
		{Name: VolumeRootCert, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: RootCertConfigMap}}}},
	}
}

// Traffic capture annotations (Istio's traffic.sidecar.istio.io/*) and
// the istio-iptables flags they become in Istio's istio-init container.
var captureAnnotations = []struct{ annotation, flag, def string }{
	{"sidecar.istio.io/interceptionMode", "-m", "REDIRECT"},
	{"traffic.sidecar.istio.io/includeOutboundIPRanges", "-i", "*"},
	{"traffic.sidecar.istio.io/excludeOutboundIPRanges", "-x", ""},
	{"traffic.sidecar.istio.io/includeOutboundPorts", "-q", ""},
	{"traffic.sidecar.istio.io/excludeOutboundPorts", "-o", ""},
	{"traffic.sidecar.istio.io/includeInboundPorts", "-b", "*"},
	{"traffic.sidecar.istio.io/excludeInboundPorts", "-d", ""},
	{"traffic.sidecar.istio.io/excludeInterfaces", "-c", ""},
}

// CaptureArgs are the istio-iptables arguments of Istio's istio-init
// container for this pod (-p 15001 -z 15006 -u 1337 and the
// traffic.sidecar.istio.io annotations, the agent and metrics ports
// always excluded from inbound capture): the capture init container runs
// `sluice capture` with them (captureInit).
func CaptureArgs(pod *corev1.Pod) []string {
	args := []string{"-p", "15001", "-z", "15006", "-u", strconv.FormatInt(ProxyUID, 10)}
	for _, a := range captureAnnotations {
		v, ok := pod.Annotations[a.annotation]
		if !ok {
			v = a.def
		}
		if a.flag == "-d" {
			v = strings.Trim(strings.Join([]string{v, strconv.Itoa(MetricsPort), strconv.Itoa(AgentPort)}, ","), ",")
		}
		if v != "" {
			args = append(args, a.flag, v)
		}
	}
	return args
}

// interceptionMode is the pod's sidecar.istio.io/interceptionMode
// (REDIRECT by default).
func interceptionMode(pod *corev1.Pod) string {
	if v, ok := pod.Annotations["sidecar.istio.io/interceptionMode"]; ok && v != "" {
		return v
	}
	return "REDIRECT"
}

// captureInit is Istio's istio-init container running `sluice capture`
// (Istio's istio-iptables) with the pod's CaptureArgs: root with
// NET_ADMIN and NET_RAW only, as Istio's template. With interception mode
// NONE there is none (ok false), as in Istio's template.
func (c Config) captureInit(pod *corev1.Pod) (corev1.Container, bool) {
	if interceptionMode(pod) == "NONE" {
		return corev1.Container{}, false
	}
	root, no := int64(0), false
	return corev1.Container{
		Name:  CaptureContainerName,
		Image: c.Image,
		Args:  append([]string{"capture"}, CaptureArgs(pod)...),
		SecurityContext: &corev1.SecurityContext{
			RunAsUser: &root, RunAsGroup: &root, RunAsNonRoot: &no, AllowPrivilegeEscalation: &no,
			Privileged: &no, ReadOnlyRootFilesystem: &no,
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, Drop: []corev1.Capability{"ALL"}},
		},
	}, true
}

// checkCaptureAnnotations rejects what istio-iptables would: unknown
// interception modes, bad CIDRs and ports (Istio's validateAnnotations).
func checkCaptureAnnotations(pod *corev1.Pod) error {
	for _, a := range captureAnnotations {
		v, ok := pod.Annotations[a.annotation]
		// "*" (everything) is for the include annotations only, as
		// Istio's ValidateInclude*/ValidateExclude* (validate.go).
		if !ok || v == "" || (v == "*" && (a.flag == "-i" || a.flag == "-b")) {
			continue
		}
		var err error
		switch a.flag {
		case "-m":
			switch {
			case v == "TPROXY":
				err = fmt.Errorf("TPROXY: not supported (sluice capture redirects with REDIRECT only)")
			case !slices.Contains([]string{"REDIRECT", "NONE"}, v):
				err = fmt.Errorf("must be REDIRECT, TPROXY or NONE")
			}
		case "-i", "-x":
			err = checkCIDRs(v)
		case "-c":
			// interface names, passed to the capture as they are
		case "-q", "-o", "-b", "-d":
			err = checkPorts(v)
		}
		if err != nil {
			return fmt.Errorf("annotation %s=%q: %w", a.annotation, v, err)
		}
	}
	return nil
}

func checkPorts(v string) error {
	for _, p := range strings.Split(v, ",") {
		if _, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16); err != nil {
			return fmt.Errorf("%q is not a port", p)
		}
	}
	return nil
}
