// Package gwstatus writes the Gateway API status sluice computes
// (pkg/gatewayapi.Status) back to a cluster's objects, as istiod's status
// writer does (pilot/pkg/status, pilot/pkg/config/kube/gateway): the
// conditions of GatewayClasses, Gateways and their listeners, and each
// route's parents. Only the parts sluice is responsible for change: a
// route's parents of other controllers are kept, and a condition's
// lastTransitionTime moves only when its status does
// (meta.SetStatusCondition). Objects the cluster does not hold (a
// folder's, beside the cluster) are skipped.
package gwstatus

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
)

// Group is the Gateway API's API group.
const Group = "gateway.networking.k8s.io"

// Writer writes status through a dynamic client; Mapper finds each kind's
// served version (a RESTMapper over the API server's discovery).
type Writer struct {
	Client dynamic.Interface
	Mapper meta.RESTMapper
	// Deployed, when set, gives a Gateway's status.addresses and the
	// conditions its deployment sets (pkg/kube/gwdeploy: Programmed, and
	// Accepted for a parametersRef that is not usable), each replacing
	// the config's condition of its type when that one is True; ok false:
	// the Gateway's status is the config's alone.
	Deployed func(ns, name string) (addresses []gwv1.GatewayStatusAddress, conds []gatewayapi.Condition, ok bool)
}

// Result counts what one Write did.
type Result struct {
	Updated, Unchanged, Missing int
}

// Write brings the cluster's status subresources in line with st. It goes
// on past an object's error and returns them all joined.
func (w *Writer) Write(ctx context.Context, st *gatewayapi.Status) (Result, error) {
	// Kinds may be served since the last look (CRDs installed later).
	if r, ok := w.Mapper.(interface{ Reset() }); ok {
		r.Reset()
	}
	var res Result
	var errs []error
	do := func(kind, ns, name string, apply func(obj *unstructured.Unstructured) error) {
		if err := w.update(ctx, kind, ns, name, apply, &res); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range st.GatewayClasses {
		do("GatewayClass", "", c.Name, func(obj *unstructured.Unstructured) error {
			return setConditions(obj.Object, obj.GetGeneration(), c.Conditions, "status", "conditions")
		})
	}
	for _, g := range st.Gateways {
		do("Gateway", g.Namespace, g.Name, func(obj *unstructured.Unstructured) error { return w.applyGateway(obj, g) })
	}
	for _, r := range st.Routes {
		do(r.Kind, r.Namespace, r.Name, func(obj *unstructured.Unstructured) error { return applyRoute(obj, r) })
	}
	return res, errors.Join(errs...)
}

// update reads the object, lets apply change it, and writes its status
// subresource when it changed.
func (w *Writer) update(ctx context.Context, kind, ns, name string, apply func(*unstructured.Unstructured) error, res *Result) error {
	m, err := w.Mapper.RESTMapping(schema.GroupKind{Group: Group, Kind: kind})
	if err != nil {
		if meta.IsNoMatchError(err) {
			res.Missing++ // the kind is not served: nothing of it is in the cluster
			return nil
		}
		return fmt.Errorf("%s %s/%s: %w", kind, ns, name, err)
	}
	var ri dynamic.ResourceInterface = w.Client.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = w.Client.Resource(m.Resource).Namespace(ns)
	}
	obj, err := ri.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		res.Missing++
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", kind, ns, name, err)
	}
	before := runtime.DeepCopyJSONValue(obj.Object["status"])
	if err := apply(obj); err != nil {
		return fmt.Errorf("%s %s/%s: status: %w", kind, ns, name, err)
	}
	if reflect.DeepEqual(before, obj.Object["status"]) {
		res.Unchanged++
		return nil
	}
	if _, err := ri.UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("%s %s/%s: update status: %w", kind, ns, name, err)
	}
	res.Updated++
	return nil
}
