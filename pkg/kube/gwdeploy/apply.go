package gwdeploy

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// apply server-side applies the ServiceAccount, Deployment and Service
// (field manager istio.io/gateway-controller, forced), each only when it
// does not exist or carries the managed label: an object of that name
// someone else made is left alone, as Istio's canManage.
func (c *Controller) apply(ctx context.Context, in *input) error {
	ns := in.gw.Namespace
	core, apps := c.opts.Client.CoreV1(), c.opts.Client.AppsV1()
	type patcher func(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) error
	type getter func(ctx context.Context, name string) (map[string]string, error)
	objects := []struct {
		kind, name string
		obj        any
		get        getter
		patch      patcher
	}{
		{"ServiceAccount", in.serviceAccount, in.serviceAccountObject(),
			func(ctx context.Context, n string) (map[string]string, error) {
				o, err := core.ServiceAccounts(ns).Get(ctx, n, metav1.GetOptions{})
				return labelsOf(o, err)
			},
			func(ctx context.Context, n string, pt types.PatchType, d []byte, o metav1.PatchOptions, sub ...string) error {
				_, err := core.ServiceAccounts(ns).Patch(ctx, n, pt, d, o, sub...)
				return err
			}},
		{"Deployment", in.name, in.deployment(),
			func(ctx context.Context, n string) (map[string]string, error) {
				o, err := apps.Deployments(ns).Get(ctx, n, metav1.GetOptions{})
				return labelsOf(o, err)
			},
			func(ctx context.Context, n string, pt types.PatchType, d []byte, o metav1.PatchOptions, sub ...string) error {
				_, err := apps.Deployments(ns).Patch(ctx, n, pt, d, o, sub...)
				return err
			}},
		{"Service", in.name, in.service(),
			func(ctx context.Context, n string) (map[string]string, error) {
				o, err := core.Services(ns).Get(ctx, n, metav1.GetOptions{})
				return labelsOf(o, err)
			},
			func(ctx context.Context, n string, pt types.PatchType, d []byte, o metav1.PatchOptions, sub ...string) error {
				_, err := core.Services(ns).Patch(ctx, n, pt, d, o, sub...)
				return err
			}},
	}
	for _, o := range objects {
		lbls, err := o.get(ctx, o.name)
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", o.kind, ns, o.name, err)
		}
		if lbls != nil && lbls[LabelManaged] == "" {
			c.opts.Logger.Warn("gateway deployment: an object of that name exists and is not managed by a gateway controller; left alone",
				"kind", o.kind, "object", ns+"/"+o.name, "gateway", in.gw.Namespace+"/"+in.gw.Name)
			continue
		}
		data, err := json.Marshal(o.obj)
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", o.kind, ns, o.name, err)
		}
		if err := o.patch(ctx, o.name, types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: ptr.To(true)}); err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", o.kind, ns, o.name, err)
		}
	}
	return nil
}

// labelsOf is an object's labels; nil and no error when it does not exist
// (labels of an existing object are never nil).
func labelsOf(o metav1.Object, err error) (map[string]string, error) {
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if l := o.GetLabels(); l != nil {
		return l, nil
	}
	return map[string]string{}, nil
}
