package gwdeploy

import (
	"cmp"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// LabelClassDefaults marks a ConfigMap of the control plane's namespace
// whose data customize every Gateway of the class it names (Istio's
// GatewayClassDefaults, gateway.istio.io/defaults-for-class).
const LabelClassDefaults = "gateway.istio.io/defaults-for-class"

// paramsError is a Gateway's spec.infrastructure.parametersRef that is
// not usable: reported as Accepted False, InvalidParameters (istiod's
// validateParametersRef in pilot/pkg/config/kube/gateway/gateway_collection.go).
type paramsError struct{ err error }

func (e *paramsError) Error() string { return e.err.Error() }
func (e *paramsError) Unwrap() error { return e.err }

// overlay is one ConfigMap customizing a Gateway's objects.
type overlay struct {
	// source names the ConfigMap in errors.
	source string
	data   map[string]string
	// params: the Gateway's own parametersRef (its errors are
	// InvalidParameters); else the class defaults.
	params bool
}

// parameters is Istio's fetchParameters and validateParametersRef: the
// ConfigMap a Gateway's spec.infrastructure.parametersRef names in the
// Gateway's namespace; nil without one; a *paramsError when it is not a
// ConfigMap (group "", kind ConfigMap) or does not exist.
func (c *Controller) parameters(gw *gwv1.Gateway) (*corev1.ConfigMap, error) {
	inf := gw.Spec.Infrastructure
	if inf == nil || inf.ParametersRef == nil {
		return nil, nil
	}
	p := inf.ParametersRef
	if p.Group != "" || p.Kind != "ConfigMap" {
		return nil, &paramsError{fmt.Errorf("Unsupported parametersRef group/kind %s/%s, only ConfigMap is supported", p.Group, p.Kind)}
	}
	cm, err := c.configMaps.ConfigMaps(gw.Namespace).Get(p.Name)
	if apierrors.IsNotFound(err) {
		return nil, &paramsError{fmt.Errorf("parametersRef ConfigMap %s/%s does not exist", gw.Namespace, p.Name)}
	}
	if err != nil {
		return nil, fmt.Errorf("parametersRef ConfigMap %s/%s: %w", gw.Namespace, p.Name, err)
	}
	return cm, nil
}

// overlays are the ConfigMaps customizing a Gateway, in the order they
// apply (Istio's render): its class's defaults (the oldest ConfigMap of
// the control plane's namespace labelled gateway.istio.io/defaults-for-class
// with the class's name, as controllers.OldestObject), then its
// parametersRef's.
func (c *Controller) overlays(gw *gwv1.Gateway, params *corev1.ConfigMap) []overlay {
	var out []overlay
	sel := labels.SelectorFromSet(labels.Set{LabelClassDefaults: string(gw.Spec.GatewayClassName)})
	if cms, _ := c.configMaps.ConfigMaps(c.opts.SystemNamespace).List(sel); len(cms) > 0 {
		oldest := slices.MinFunc(cms, func(a, b *corev1.ConfigMap) int {
			if r := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); r != 0 {
				return r
			}
			return cmp.Compare(a.Name, b.Name)
		})
		out = append(out, overlay{source: fmt.Sprintf("ConfigMap %s/%s (%s=%s)", oldest.Namespace, oldest.Name,
			LabelClassDefaults, gw.Spec.GatewayClassName), data: oldest.Data})
	}
	if params != nil {
		out = append(out, overlay{source: fmt.Sprintf("parametersRef ConfigMap %s/%s", params.Namespace, params.Name),
			data: params.Data, params: true})
	}
	return out
}

// gatewaysForConfigMap are the Gateways a ConfigMap customizes: those
// whose parametersRef names it, and, for a class defaults ConfigMap of the
// control plane's namespace, those of its class (Istio's configMaps
// handler).
func (c *Controller) gatewaysForConfigMap(cm *corev1.ConfigMap) []*gwv1.Gateway {
	var out []*gwv1.Gateway
	gws, _ := c.gateways.Gateways(cm.Namespace).List(labels.Everything())
	for _, gw := range gws {
		if inf := gw.Spec.Infrastructure; inf != nil && inf.ParametersRef != nil && inf.ParametersRef.Name == cm.Name {
			out = append(out, gw)
		}
	}
	class, ok := cm.Labels[LabelClassDefaults]
	if !ok || cm.Namespace != c.opts.SystemNamespace {
		return out
	}
	all, _ := c.gateways.List(labels.Everything())
	for _, gw := range all {
		if string(gw.Spec.GatewayClassName) == class {
			out = append(out, gw)
		}
	}
	return out
}
