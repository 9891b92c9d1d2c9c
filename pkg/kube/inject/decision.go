// Package inject is sidecar injection as Istio's (pkg/kube/inject): the
// decision whether a pod gets a proxy, the pod mutation (the sidecar
// template, the probe rewrite to the agent port), the JSON patch the
// admission webhook returns, the webhook server and its
// MutatingWebhookConfiguration, and the same mutation offline for
// `sluice kube-inject`.
package inject

import (
	"fmt"
	"slices"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Labels and annotations read and written, named as Istio's
// (istio.io/api annotation and label packages).
const (
	LabelInjection     = "istio-injection"         // namespace: enabled|disabled
	LabelRevision      = "istio.io/rev"            // namespace or pod: the control plane revision
	LabelSidecarInject = "sidecar.istio.io/inject" // pod label (wins) or annotation: "true"|"false"
	AnnotationStatus   = "sidecar.istio.io/status" // written on injection
	DefaultRevision    = "default"
)

// ignoredNamespaces are never injected (Istio's IgnoredNamespaces:
// kube-system, kube-public), whatever their labels say.
var ignoredNamespaces = []string{metav1.NamespaceSystem, metav1.NamespacePublic}

// Decision says whether a pod is injected and why not.
type Decision struct {
	Inject bool
	Reason string
}

// Required is Istio's injectRequired (pkg/kube/inject/inject.go) with
// the injection policy "enabled" (Istio's default): the pod object alone
// decides here, the namespace having been selected by the webhook
// configuration's selectors (Webhooks). hostNetwork pods are skipped (a
// proxy there would act on the node's network), the system namespaces
// too, a pod already injected is left alone, and the pod's
// sidecar.istio.io/inject label, else its annotation ("true"/"false";
// the label wins as Istio's), can turn injection off. Any other value
// falls back to the default, as Istio's does (with a warning there).
func Required(pod *corev1.Pod, namespace string) Decision {
	switch {
	case pod.Spec.HostNetwork:
		return Decision{Reason: "hostNetwork pod"}
	case slices.Contains(ignoredNamespaces, namespace):
		return Decision{Reason: fmt.Sprintf("namespace %s is never injected", namespace)}
	case pod.Annotations[AnnotationStatus] != "":
		return Decision{Reason: "already injected (" + AnnotationStatus + " is set)"}
	}
	value, source := pod.Annotations[LabelSidecarInject], "annotation"
	if l, ok := pod.Labels[LabelSidecarInject]; ok {
		value, source = l, "label"
	}
	if value == "false" {
		return Decision{Reason: fmt.Sprintf("%s %s=false", source, LabelSidecarInject)}
	}
	return Decision{Inject: true}
}

// WebhookOptions name the webhook the API server calls.
type WebhookOptions struct {
	// Revision is the control plane's revision ("" or "default": the
	// default revision, which also owns the istio-injection label).
	Revision string
	// Namespace is where the control plane runs (istio-system).
	Namespace string
	// URL, when set, is the webhook's address (a control plane outside
	// the cluster, as Istio's istiodRemote.injectionURL); otherwise the
	// Service istiod[-<rev>] in Namespace, port 443, path /inject.
	URL string
	// CABundle verifies the webhook's serving certificate.
	CABundle []byte
}

// ConfigurationName is the MutatingWebhookConfiguration's name, as
// Istio's chart names it: istio-sidecar-injector, -<rev> for a revision,
// -<namespace> outside istio-system.
func (o WebhookOptions) ConfigurationName() string {
	name := "istio-sidecar-injector"
	if r := o.revision(); r != DefaultRevision {
		name += "-" + r
	}
	if o.Namespace != "" && o.Namespace != "istio-system" {
		name += "-" + o.Namespace
	}
	return name
}

// ServiceName is the control plane Service the webhook is reached at.
func (o WebhookOptions) ServiceName() string {
	if r := o.revision(); r != DefaultRevision {
		return "istiod-" + r
	}
	return "istiod"
}

func (o WebhookOptions) revision() string {
	if o.Revision == "" {
		return DefaultRevision
	}
	return o.Revision
}

// Webhooks are the webhooks of Istio's MutatingWebhookConfiguration
// (manifests/charts/istio-control/istio-discovery/templates/
// mutatingwebhook.yaml), whose selectors are the namespace half of the
// decision:
//   - rev.namespace: namespace istio.io/rev=<rev> and no istio-injection
//     label; pod not sidecar.istio.io/inject=false;
//   - rev.object: namespace without either label; pod istio.io/rev=<rev>
//     and not sidecar.istio.io/inject=false;
//   - default revision only: namespace: namespace istio-injection=enabled,
//     pod not sidecar.istio.io/inject=false; object: namespace without
//     either label, pod sidecar.istio.io/inject=true and no istio.io/rev.
//
// istio-injection=disabled thus selects nothing, and the istio-injection
// label wins over istio.io/rev.
func Webhooks(o WebhookOptions) []admissionregv1.MutatingWebhook {
	rev := o.revision()
	notFalse := metav1.LabelSelectorRequirement{Key: LabelSidecarInject, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}}
	noInjection := metav1.LabelSelectorRequirement{Key: LabelInjection, Operator: metav1.LabelSelectorOpDoesNotExist}
	noRev := metav1.LabelSelectorRequirement{Key: LabelRevision, Operator: metav1.LabelSelectorOpDoesNotExist}
	isRev := metav1.LabelSelectorRequirement{Key: LabelRevision, Operator: metav1.LabelSelectorOpIn, Values: []string{rev}}
	out := []admissionregv1.MutatingWebhook{
		o.webhook("rev.namespace.", []metav1.LabelSelectorRequirement{isRev, noInjection}, []metav1.LabelSelectorRequirement{notFalse}),
		o.webhook("rev.object.", []metav1.LabelSelectorRequirement{noRev, noInjection}, []metav1.LabelSelectorRequirement{notFalse, isRev}),
	}
	if rev == DefaultRevision {
		enabled := metav1.LabelSelectorRequirement{Key: LabelInjection, Operator: metav1.LabelSelectorOpIn, Values: []string{"enabled"}}
		isTrue := metav1.LabelSelectorRequirement{Key: LabelSidecarInject, Operator: metav1.LabelSelectorOpIn, Values: []string{"true"}}
		out = append(out,
			o.webhook("namespace.", []metav1.LabelSelectorRequirement{enabled}, []metav1.LabelSelectorRequirement{notFalse}),
			o.webhook("object.", []metav1.LabelSelectorRequirement{noInjection, noRev}, []metav1.LabelSelectorRequirement{isTrue, noRev}))
	}
	return out
}

// WebhookSuffix ends the name of every webhook of the configuration.
const WebhookSuffix = "sidecar-injector.istio.io"

func (o WebhookOptions) webhook(prefix string, ns, obj []metav1.LabelSelectorRequirement) admissionregv1.MutatingWebhook {
	none, fail, never := admissionregv1.SideEffectClassNone, admissionregv1.Fail, admissionregv1.NeverReinvocationPolicy
	cc := admissionregv1.WebhookClientConfig{CABundle: o.CABundle}
	if o.URL != "" {
		u := o.URL
		cc.URL = &u
	} else {
		path, port := "/inject", int32(443)
		cc.Service = &admissionregv1.ServiceReference{Name: o.ServiceName(), Namespace: o.Namespace, Path: &path, Port: &port}
	}
	return admissionregv1.MutatingWebhook{
		Name:         prefix + WebhookSuffix,
		ClientConfig: cc,
		Rules: []admissionregv1.RuleWithOperations{{
			Operations: []admissionregv1.OperationType{admissionregv1.Create},
			Rule:       admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
		}},
		NamespaceSelector:       &metav1.LabelSelector{MatchExpressions: ns},
		ObjectSelector:          &metav1.LabelSelector{MatchExpressions: obj},
		SideEffects:             &none,
		FailurePolicy:           &fail,
		ReinvocationPolicy:      &never,
		AdmissionReviewVersions: []string{"v1"},
	}
}

// Selected says whether any of the webhooks would be called for a pod
// with podLabels in a namespace with nsLabels: the API server's
// selector evaluation, for explaining a decision (and tests).
func Selected(o WebhookOptions, nsLabels, podLabels map[string]string) (bool, error) {
	for _, w := range Webhooks(o) {
		ns, err := metav1.LabelSelectorAsSelector(w.NamespaceSelector)
		if err != nil {
			return false, fmt.Errorf("webhook %s: namespaceSelector: %w", w.Name, err)
		}
		obj, err := metav1.LabelSelectorAsSelector(w.ObjectSelector)
		if err != nil {
			return false, fmt.Errorf("webhook %s: objectSelector: %w", w.Name, err)
		}
		if ns.Matches(labels.Set(nsLabels)) && obj.Matches(labels.Set(podLabels)) {
			return true, nil
		}
	}
	return false, nil
}
