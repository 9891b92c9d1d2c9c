package gwdeploy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/pkg/kube/inject"
)

// Overlay keys of a customizing ConfigMap, one per rendered kind (Istio's
// supportedOverlays). The HorizontalPodAutoscaler and PodDisruptionBudget
// exist only when a ConfigMap has their key (Istio's requiredOverlays).
const (
	KeyDeployment     = "deployment"
	KeyService        = "service"
	KeyServiceAccount = "serviceAccount"
	KeyHPA            = "horizontalPodAutoscaler"
	KeyPDB            = "podDisruptionBudget"
)

// overlayKeys are the supported keys, sorted.
var overlayKeys = []string{KeyDeployment, KeyHPA, KeyPDB, KeyService, KeyServiceAccount}

// object is one rendered object of a Gateway.
type object struct {
	kind, name string
	// key is its overlay key; optional: rendered only when an overlay
	// has the key.
	key      string
	optional bool
	// obj is the typed object as the template renders it; after
	// overlays, data is what is applied (nil: not rendered).
	obj  metav1.Object
	data []byte
}

// overlayError names the ConfigMap and key an overlay failed at; one of
// the Gateway's own parametersRef is reported as InvalidParameters.
func overlayError(ov overlay, key string, err error) error {
	err = fmt.Errorf("%s, key %q: %w", ov.source, key, err)
	if ov.params {
		return &paramsError{err: err}
	}
	return err
}

// checkKeys is Istio's supportedOverlays check: a ConfigMap with any other
// key customizes nothing.
func checkKeys(ovs []overlay) error {
	for _, ov := range ovs {
		for k := range ov.data {
			if !slices.Contains(overlayKeys, k) {
				return overlayError(ov, k, fmt.Errorf("not a supported key (supported: %s)", strings.Join(overlayKeys, ", ")))
			}
		}
	}
	return nil
}

// applyOverlays is Istio's applyOverlay for one object: each overlay's
// YAML under the object's key, in order, as a strategic merge patch
// (strategicMergePatchYAML, the kind's patch strategies); the result must
// decode strictly as the kind and keep the object's identity (name,
// namespace, owner references...: Istio's "illegal metadata change").
func (o *object) applyOverlays(ovs []overlay) error {
	raw, err := json.Marshal(o.obj)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return err
	}
	schema, err := strategicpatch.NewPatchMetaFromStruct(o.obj)
	if err != nil {
		return err
	}
	applied := false
	for _, ov := range ovs {
		text, ok := ov.data[o.key]
		if !ok {
			continue
		}
		patch := map[string]any{}
		if err := yaml.Unmarshal([]byte(text), &patch); err != nil {
			return overlayError(ov, o.key, fmt.Errorf("not a YAML object: %w", err))
		}
		doc, err = strategicpatch.StrategicMergeMapPatchUsingLookupPatchMeta(doc, patch, schema)
		if err != nil {
			return overlayError(ov, o.key, fmt.Errorf("strategic merge patch: %w", err))
		}
		if err := o.check(doc); err != nil {
			return overlayError(ov, o.key, err)
		}
		applied = true
	}
	if !applied && o.optional {
		return nil
	}
	typed, err := o.decode(doc)
	if err != nil {
		return err
	}
	if d, ok := typed.(*appsv1.Deployment); ok {
		relabel(d)
	}
	if raw, err = json.Marshal(typed); err != nil {
		return err
	}
	doc = nil
	if err := json.Unmarshal(raw, &doc); err != nil {
		return err
	}
	delete(doc, "status") // the controllers' (Istio's template has none)
	o.data, err = json.Marshal(doc)
	return err
}

// decode decodes a patched object strictly as its kind: an unknown field
// or a value of the wrong type is an error.
func (o *object) decode(doc map[string]any) (metav1.Object, error) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	typed := reflect.New(reflect.TypeOf(o.obj).Elem()).Interface().(metav1.Object)
	if err := yaml.UnmarshalStrict(raw, typed); err != nil {
		return nil, fmt.Errorf("not a valid %s: %w", o.kind, err)
	}
	return typed, nil
}

// check decodes a patched object and refuses a change of its identity.
func (o *object) check(doc map[string]any) error {
	typed, err := o.decode(doc)
	if err != nil {
		return err
	}
	a, b := o.obj, typed
	ca, cb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	same := a.GetName() == b.GetName() && a.GetGenerateName() == b.GetGenerateName() && a.GetNamespace() == b.GetNamespace() &&
		a.GetUID() == b.GetUID() && a.GetResourceVersion() == b.GetResourceVersion() && a.GetGeneration() == b.GetGeneration() &&
		ca.Equal(&cb) && a.GetDeletionTimestamp().Equal(b.GetDeletionTimestamp()) &&
		equality.Semantic.DeepEqual(a.GetDeletionGracePeriodSeconds(), b.GetDeletionGracePeriodSeconds()) &&
		equality.Semantic.DeepEqual(a.GetOwnerReferences(), b.GetOwnerReferences()) &&
		slices.Equal(a.GetFinalizers(), b.GetFinalizers()) && len(b.GetManagedFields()) == 0
	if !same {
		return fmt.Errorf("illegal metadata change: only labels and annotations may be set (name %q, namespace %q and owner references are the controller's)",
			a.GetName(), a.GetNamespace())
	}
	return nil
}

// relabel keeps the proxy's --labels the pod template's labels after an
// overlay added some (the Gateway's servers select the proxy by them).
func relabel(d *appsv1.Deployment) {
	for i := range d.Spec.Template.Spec.Containers {
		c := &d.Spec.Template.Spec.Containers[i]
		if c.Name != inject.ProxyContainerName {
			continue
		}
		for j := 0; j+1 < len(c.Args); j++ {
			if c.Args[j] == "--labels" {
				c.Args[j+1] = labelsFlag(d.Spec.Template.Labels)
			}
		}
	}
}
