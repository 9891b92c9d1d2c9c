package gwdeploy

import (
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
	"github.com/sluice-mesh/sluice/pkg/kube/inject"
)

// Labels and annotations of Istio's gateway deployment controller
// (istio.io/api label and annotation, kube-gateway.yaml).
const (
	LabelGatewayName      = gatewayapi.GatewayNameLabel                    // gateway.networking.k8s.io/gateway-name
	LabelGatewayClassName = "gateway.networking.k8s.io/gateway-class-name" // on everything rendered
	LabelManaged          = "gateway.istio.io/managed"                     // what may be overwritten
	// ManagedValue is the managed label's value: the controller name with
	// "/" made "-", as Istio's apply sets it.
	ManagedValue = "istio.io-gateway-controller"

	AnnotationServiceType    = "networking.istio.io/service-type"
	AnnotationAddressType    = "networking.istio.io/address-type"
	AnnotationNameOverride   = "gateway.istio.io/name-override"
	AnnotationServiceAccount = "gateway.istio.io/service-account"
	// AnnotationControllerVersion is read as Istio's
	// ManagedGatewayControllerVersion: a newer (or unparsable) version
	// than ControllerVersion belongs to another controller.
	AnnotationControllerVersion = "gateway.istio.io/controller-version"
	AnnotationProxyImage        = "sidecar.istio.io/proxyImage"

	// ControllerVersion is Istio's (1.18+: 5).
	ControllerVersion = 5
	// FieldManager is the server-side apply field manager, Istio's
	// controller name.
	FieldManager = gatewayapi.IstioControllerName
	// StatusPort is Istio's gateway status port (/healthz/ready): sluice's
	// --agent-address in a gateway pod.
	StatusPort = 15021
)

// omitted are the Gateway annotations Istio's template does not copy onto
// what it renders.
var omitted = []string{"kubectl.kubernetes.io/last-applied-configuration", AnnotationNameOverride,
	AnnotationServiceAccount, AnnotationControllerVersion}

// rejected are Gateway annotations Istio's template reads that sluice's
// does not implement: a Gateway carrying one is not deployed (its
// Programmed condition says why) rather than deployed without it.
var rejected = []string{"sidecar.istio.io/logLevel", "sidecar.istio.io/componentLogLevel",
	"sidecar.istio.io/agentLogLevel", "proxy.istio.io/config"}

// rejectedLabel is the infrastructure label Istio's template reads for
// multi-network (ISTIO_META_NETWORK); sluice has no multi-network.
const rejectedLabel = "topology.istio.io/network"

// input is what one Gateway renders from (Istio's TemplateInput).
type input struct {
	gw                      *gwv1.Gateway
	name, serviceAccount    string
	serviceType             corev1.ServiceType
	labels, annotations     map[string]string
	revision                string
	image, xds, trustDomain string
}

// newInput checks a managed Gateway's deployment annotations and
// infrastructure and computes its names as Istio's configureIstioGateway.
func (c *Controller) newInput(gw *gwv1.Gateway) (*input, error) {
	for _, a := range rejected {
		if _, ok := gw.Annotations[a]; ok {
			return nil, fmt.Errorf("annotation %s is not supported by sluice's gateway deployment", a)
		}
	}
	for a := range gw.Annotations {
		if strings.HasPrefix(a, "gateway.istio.io/") && a != AnnotationNameOverride && a != AnnotationServiceAccount && a != AnnotationControllerVersion {
			return nil, fmt.Errorf("annotation %s is not supported by sluice", a)
		}
	}
	def := gw.Name + "-" + string(gw.Spec.GatewayClassName) // GetDefaultName
	in := &input{gw: gw, name: orDefault(gw.Annotations[AnnotationNameOverride], def),
		serviceAccount: orDefault(gw.Annotations[AnnotationServiceAccount], def),
		serviceType:    corev1.ServiceTypeLoadBalancer, revision: orDefault(c.opts.Revision, inject.DefaultRevision),
		image: c.opts.Image, xds: c.opts.XDSAddress, trustDomain: c.opts.TrustDomain}
	if t, ok := gw.Annotations[AnnotationServiceType]; ok {
		switch st := corev1.ServiceType(t); st {
		case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
			in.serviceType = st
		default:
			return nil, fmt.Errorf("annotation %s: %q is not ClusterIP, NodePort or LoadBalancer", AnnotationServiceType, t)
		}
	}
	if img := gw.Annotations[AnnotationProxyImage]; strings.Contains(img, "/") {
		in.image = img // as the template: only a full image reference
	}
	in.labels, in.annotations = infraMeta(gw)
	if _, ok := in.labels[rejectedLabel]; ok {
		return nil, fmt.Errorf("label %s is not supported by sluice's gateway deployment (no multi-network)", rejectedLabel)
	}
	return in, nil
}

// infraMeta is Istio's extractInfrastructureLabels/Annotations:
// spec.infrastructure's labels and annotations when set, else the
// Gateway's own (EnableGatewayAPICopyLabelsAnnotations, on by default);
// gateway.networking.k8s.io/ keys of spec.infrastructure are dropped.
func infraMeta(gw *gwv1.Gateway) (labels, annotations map[string]string) {
	translate := func(m map[gwv1.LabelKey]gwv1.LabelValue) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			if !strings.HasPrefix(string(k), "gateway.networking.k8s.io/") {
				out[string(k)] = string(v)
			}
		}
		return out
	}
	translateA := func(m map[gwv1.AnnotationKey]gwv1.AnnotationValue) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			if !strings.HasPrefix(string(k), "gateway.networking.k8s.io/") {
				out[string(k)] = string(v)
			}
		}
		return out
	}
	labels, annotations = maps.Clone(gw.Labels), maps.Clone(gw.Annotations)
	if inf := gw.Spec.Infrastructure; inf != nil && inf.Labels != nil {
		labels = translate(inf.Labels)
	}
	if inf := gw.Spec.Infrastructure; inf != nil && inf.Annotations != nil {
		annotations = translateA(inf.Annotations)
	}
	if labels == nil {
		labels = map[string]string{}
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	for _, k := range omitted {
		delete(annotations, k)
	}
	return labels, annotations
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// merged returns the maps merged, later ones winning.
func merged(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

// meta is the ObjectMeta of each rendered object: infrastructure labels
// and annotations, the gateway name and class labels, the managed label,
// and the Gateway as controlling owner (garbage collected with it).
func (in *input) meta(name string) metav1.ObjectMeta {
	gw := in.gw
	return metav1.ObjectMeta{Name: name, Namespace: gw.Namespace,
		Labels: merged(in.labels, map[string]string{LabelGatewayName: gw.Name,
			LabelGatewayClassName: string(gw.Spec.GatewayClassName), LabelManaged: ManagedValue}),
		Annotations: maps.Clone(in.annotations),
		OwnerReferences: []metav1.OwnerReference{{APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway",
			Name: gw.Name, UID: gw.UID}},
	}
}

// objects renders the Gateway's objects in the template's order, each
// with the overlays applied (Istio's render and applyOverlay): the
// ServiceAccount, Deployment and Service, and the HorizontalPodAutoscaler
// and PodDisruptionBudget when an overlay has their key.
func (in *input) objects(ovs []overlay) ([]*object, error) {
	if err := checkKeys(ovs); err != nil {
		return nil, err
	}
	objs := []*object{
		{kind: "ServiceAccount", name: in.serviceAccount, key: KeyServiceAccount, obj: in.serviceAccountObject()},
		{kind: "Deployment", name: in.name, key: KeyDeployment, obj: in.deployment()},
		{kind: "Service", name: in.name, key: KeyService, obj: in.service()},
		{kind: "HorizontalPodAutoscaler", name: in.name, key: KeyHPA, optional: true, obj: in.hpa()},
		{kind: "PodDisruptionBudget", name: in.name, key: KeyPDB, optional: true, obj: in.pdb()},
	}
	for _, o := range objs {
		if err := o.applyOverlays(ovs); err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// hpa is the template's HorizontalPodAutoscaler: the Deployment, at most
// one replica until an overlay says more. (The template's Deployment sets
// no replicas, so the autoscaler owns them unless the deployment overlay
// sets spec.replicas.)
func (in *input) hpa() *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: in.meta(in.name),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 1,
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: in.name}}}
}

// pdb is the template's PodDisruptionBudget over the gateway's pods.
func (in *input) pdb() *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{TypeMeta: metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: in.meta(in.name),
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{
			MatchLabels: map[string]string{LabelGatewayName: in.gw.Name}}}}
}

// serviceAccount renders the ServiceAccount.
func (in *input) serviceAccountObject() *corev1.ServiceAccount {
	return &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: in.meta(in.serviceAccount)}
}

// service renders the Service: Istio's ports (servicePorts), selecting the
// gateway's pods, of the Gateway's service type; a single IPAddress
// address of a LoadBalancer becomes its loadBalancerIP, as the template.
func (in *input) service() *corev1.Service {
	svc := &corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}, ObjectMeta: in.meta(in.name),
		Spec: corev1.ServiceSpec{Type: in.serviceType, Ports: servicePorts(in.gw),
			Selector:       map[string]string{LabelGatewayName: in.gw.Name},
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyPreferDualStack)}}
	if len(in.gw.Spec.Addresses) > 0 && in.serviceType == corev1.ServiceTypeLoadBalancer {
		svc.Spec.LoadBalancerIP = in.gw.Spec.Addresses[0].Value
	}
	return svc
}

// servicePorts is Istio's extractServicePorts: status-port 15021, then one
// TCP port per distinct listener port, named after its listener (dots made
// dashes, 63 characters, made unique with -<port>), appProtocol the
// listener's protocol lower-cased. (No QUIC port: sluice serves no HTTP/3.)
func servicePorts(gw *gwv1.Gateway) []corev1.ServicePort {
	tcp := "tcp"
	out := []corev1.ServicePort{{Name: "status-port", Port: StatusPort, Protocol: corev1.ProtocolTCP, AppProtocol: &tcp}}
	seen, used := sets.New[int32](), sets.New("status-port")
	for i, l := range gw.Spec.Listeners {
		if seen.Has(l.Port) {
			continue
		}
		seen.Insert(l.Port)
		name := strings.ReplaceAll(string(l.Name), ".", "-")
		if len(name) > 63 {
			name = name[:63]
		}
		if name == "" {
			name = fmt.Sprintf("%s-%d", strings.ToLower(string(l.Protocol)), i)
		}
		name = uniquePortName(name, l.Port, used)
		proto := strings.ToLower(string(l.Protocol))
		out = append(out, corev1.ServicePort{Name: name, Port: l.Port, Protocol: corev1.ProtocolTCP, AppProtocol: &proto})
	}
	return out
}

// uniquePortName is Istio's: name, else name-<port>(x...) within 63.
func uniquePortName(name string, port int32, used sets.Set[string]) string {
	candidate := name
	for suffix := fmt.Sprintf("-%d", port); used.Has(candidate); suffix += "x" {
		trimmed := name
		if len(trimmed)+len(suffix) > 63 {
			trimmed = trimmed[:63-len(suffix)]
		}
		candidate = trimmed + suffix
	}
	used.Insert(candidate)
	return candidate
}

// podLabels are the gateway pods' labels, as the template's.
func (in *input) podLabels() map[string]string {
	return merged(map[string]string{"sidecar.istio.io/inject": "false",
		"service.istio.io/canonical-name": in.name, "service.istio.io/canonical-revision": "latest"},
		in.labels, map[string]string{LabelGatewayName: in.gw.Name,
			LabelGatewayClassName: string(in.gw.Spec.GatewayClassName), LabelManaged: ManagedValue})
}

// deployment renders the Deployment running `sluice proxy --type router`.
func (in *input) deployment() *appsv1.Deployment {
	labels := in.podLabels()
	// sluice serves Istio's metrics on 15090 (no metrics merge on 15020,
	// which is Istio's prometheus.io/port for gateways).
	annotations := merged(in.annotations, map[string]string{inject.LabelRevision: in.revision},
		map[string]string{"prometheus.io/path": "/stats/prometheus", "prometheus.io/port": strconv.Itoa(inject.MetricsPort), "prometheus.io/scrape": "true"})
	return &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: in.meta(in.name),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelGatewayName: in.gw.Name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					SecurityContext:    &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}}},
					ServiceAccountName: in.serviceAccount,
					Containers:         []corev1.Container{in.container(labels)},
					Volumes:            volumes(),
				}}}}
}

// container is the proxy container: Istio's gateway container (ports,
// probes on the status port, security context) running sluice.
func (in *input) container(labels map[string]string) corev1.Container {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	ready := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready",
		Port: intstr.FromInt32(StatusPort), Scheme: corev1.URISchemeHTTP}}, TimeoutSeconds: 1, SuccessThreshold: 1}
	startup, readiness := *ready, *ready
	startup.FailureThreshold, startup.PeriodSeconds, startup.InitialDelaySeconds = 30, 1, 1
	readiness.FailureThreshold, readiness.PeriodSeconds = 4, 15
	return corev1.Container{Name: inject.ProxyContainerName, Image: in.image,
		Args: []string{"proxy", "--type", "router",
			"--name", "$(POD_NAME)", "--namespace", "$(POD_NAMESPACE)",
			"--service-account", "$(SERVICE_ACCOUNT)", "--ip", "$(INSTANCE_IP)",
			"--labels", labelsFlag(labels),
			"--xds-address", in.xds, "--trust-domain", in.trustDomain,
			"--token-file", inject.TokenPath + "/" + inject.VolumeToken,
			"--ca-root-file", inject.RootCertPath + "/" + "root-cert.pem",
			"--admin-address", "127.0.0.1:15000",
			"--agent-address", "0.0.0.0:" + strconv.Itoa(StatusPort),
			"--metrics-address", "0.0.0.0:" + strconv.Itoa(inject.MetricsPort)},
		Env: []corev1.EnvVar{field("POD_NAME", "metadata.name"), field("POD_NAMESPACE", "metadata.namespace"),
			field("INSTANCE_IP", "status.podIP"), field("SERVICE_ACCOUNT", "spec.serviceAccountName")},
		Ports: []corev1.ContainerPort{{Name: "status-port", ContainerPort: StatusPort, Protocol: corev1.ProtocolTCP},
			{Name: "http-envoy-prom", ContainerPort: inject.MetricsPort, Protocol: corev1.ProtocolTCP}},
		StartupProbe: &startup, ReadinessProbe: &readiness,
		SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			AllowPrivilegeEscalation: ptr.To(false), Privileged: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
			RunAsUser: ptr.To(inject.ProxyUID), RunAsGroup: ptr.To(inject.ProxyUID), RunAsNonRoot: ptr.To(true)},
		VolumeMounts: []corev1.VolumeMount{{Name: inject.VolumeToken, MountPath: inject.TokenPath},
			{Name: inject.VolumeRootCert, MountPath: inject.RootCertPath}},
	}
}

// volumes are the projected token (audience istio-ca, 12 h) and the root
// certificate ConfigMap, as the template's istio-token and istiod-ca-cert.
func volumes() []corev1.Volume {
	exp := int64(43200)
	return []corev1.Volume{
		{Name: inject.VolumeToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: inject.TokenAudience, ExpirationSeconds: &exp, Path: inject.VolumeToken}}}}}},
		{Name: inject.VolumeRootCert, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: inject.RootCertConfigMap}}}},
	}
}

// labelsFlag is --labels k=v,k=v, sorted.
func labelsFlag(m map[string]string) string {
	kv := make([]string, 0, len(m))
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}
