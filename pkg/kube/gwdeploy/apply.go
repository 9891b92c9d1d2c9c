package gwdeploy

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// kindClient reads, applies and deletes objects of one kind in a
// namespace.
type kindClient struct {
	get   func(ctx context.Context, name string) (metav1.Object, error)
	patch func(ctx context.Context, name string, data []byte) error
	del   func(ctx context.Context, name string, uid types.UID) error
}

// typedClient is what client-go's typed clients of a namespaced kind have.
type typedClient[T metav1.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// wrap makes a typed client a kindClient: apply is a forced server-side
// apply by FieldManager, delete is preconditioned on the UID read.
func wrap[T metav1.Object](r typedClient[T]) kindClient {
	return kindClient{
		get: func(ctx context.Context, n string) (metav1.Object, error) { return r.Get(ctx, n, metav1.GetOptions{}) },
		patch: func(ctx context.Context, n string, d []byte) error {
			_, err := r.Patch(ctx, n, types.ApplyPatchType, d, metav1.PatchOptions{FieldManager: FieldManager, Force: ptr.To(true)})
			return err
		},
		del: func(ctx context.Context, n string, uid types.UID) error {
			return r.Delete(ctx, n, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		},
	}
}

// client is the typed client of a rendered kind in ns.
func (c *Controller) client(kind, ns string) kindClient {
	k := c.opts.Client
	switch kind {
	case "ServiceAccount":
		return wrap[*corev1.ServiceAccount](k.CoreV1().ServiceAccounts(ns))
	case "Deployment":
		return wrap[*appsv1.Deployment](k.AppsV1().Deployments(ns))
	case "Service":
		return wrap[*corev1.Service](k.CoreV1().Services(ns))
	case "HorizontalPodAutoscaler":
		return wrap[*autoscalingv2.HorizontalPodAutoscaler](k.AutoscalingV2().HorizontalPodAutoscalers(ns))
	case "PodDisruptionBudget":
		return wrap[*policyv1.PodDisruptionBudget](k.PolicyV1().PodDisruptionBudgets(ns))
	}
	panic("gwdeploy: no client for kind " + kind)
}

// apply server-side applies the rendered objects (field manager
// istio.io/gateway-controller, forced), each only when it does not exist
// or carries the managed label: an object of that name someone else made
// is left alone, as Istio's canManage. An optional object not rendered
// (no ConfigMap has its key any more) is deleted when it is this
// Gateway's (managed, owned by it); istiod leaves it behind.
func (c *Controller) apply(ctx context.Context, gw *gwv1.Gateway, objs []*object) error {
	ns := gw.Namespace
	for _, o := range objs {
		kc := c.client(o.kind, ns)
		cur, err := kc.get(ctx, o.name)
		if apierrors.IsNotFound(err) {
			cur, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", o.kind, ns, o.name, err)
		}
		if o.data == nil {
			if cur != nil && cur.GetLabels()[LabelManaged] == ManagedValue && ownedBy(cur, gw) {
				if err := kc.del(ctx, o.name, cur.GetUID()); err != nil && !apierrors.IsNotFound(err) {
					return fmt.Errorf("delete %s %s/%s: %w", o.kind, ns, o.name, err)
				}
			}
			continue
		}
		if cur != nil && cur.GetLabels()[LabelManaged] == "" {
			c.opts.Logger.Warn("gateway deployment: an object of that name exists and is not managed by a gateway controller; left alone",
				"kind", o.kind, "object", ns+"/"+o.name, "gateway", gw.Namespace+"/"+gw.Name)
			continue
		}
		if err := kc.patch(ctx, o.name, o.data); err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", o.kind, ns, o.name, err)
		}
	}
	return nil
}

// ownedBy says whether the Gateway is one of o's owners.
func ownedBy(o metav1.Object, gw *gwv1.Gateway) bool {
	for _, r := range o.GetOwnerReferences() {
		if r.Kind == "Gateway" && r.UID == gw.UID {
			return true
		}
	}
	return false
}
