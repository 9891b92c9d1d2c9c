package gwstatus

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
)

// defaultClasses are the GatewayClasses istiod creates when they do not
// exist (pilot/pkg/config/kube/gatewaycommon/gatewayclass.go
// reconcileClass and classinfo.go), with Istio's descriptions.
var defaultClasses = []struct{ name, controller, description string }{
	{"istio", gatewayapi.IstioControllerName, "The default Istio GatewayClass"},
	{"istio-waypoint", gatewayapi.MeshControllerName, "The default Istio waypoint GatewayClass"},
}

// EnsureDefaultClasses creates Istio's default GatewayClasses that do not
// exist; an existing one is left as it is (a user may have changed it).
// Nothing is done when the cluster does not serve GatewayClass.
func (w *Writer) EnsureDefaultClasses(ctx context.Context) (created []string, err error) {
	m, err := w.Mapper.RESTMapping(schema.GroupKind{Group: Group, Kind: "GatewayClass"})
	if meta.IsNoMatchError(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("GatewayClass: %w", err)
	}
	ri := w.Client.Resource(m.Resource)
	var errs []error
	for _, c := range defaultClasses {
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": m.GroupVersionKind.GroupVersion().String(), "kind": "GatewayClass",
			"metadata": map[string]any{"name": c.name},
			"spec":     map[string]any{"controllerName": c.controller, "description": c.description},
		}}
		_, err := ri.Create(ctx, obj, metav1.CreateOptions{})
		switch {
		case err == nil:
			created = append(created, c.name)
		case apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err):
		default:
			errs = append(errs, fmt.Errorf("GatewayClass %s: %w", c.name, err))
		}
	}
	return created, errors.Join(errs...)
}
