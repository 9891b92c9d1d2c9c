package install

import (
	"context"
	"fmt"
	"io"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// PruneKinds are the kinds install creates and uninstall deletes, in
// deletion order (webhooks first so no pod admission calls a control
// plane being removed; CRDs last, and only with Purge). A test checks
// every kind the chart renders is here.
var PruneKinds = []schema.GroupVersionResource{
	{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "daemonsets"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "configmaps"},
	{Version: "v1", Resource: "serviceaccounts"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	crdResource,
}

// UninstallOptions select what Uninstall removes.
type UninstallOptions struct {
	// Revision is the control plane revision removed ("" the default one);
	// its revision tags go with it.
	Revision string
	// Purge removes every object install made, of every revision, CRDs
	// included (the Istio and Gateway API objects stored in them go too).
	Purge bool
	// DryRun lists and deletes nothing.
	DryRun bool
	Log    io.Writer
}

// Selector is the label selector of what o removes.
func (o UninstallOptions) Selector() string {
	s := labels.Set{LabelManagedBy: ManagedBy}
	if !o.Purge {
		rev := o.Revision
		if rev == "" {
			rev = "default"
		}
		s[LabelRevision] = rev
	}
	return s.String()
}

// Uninstall deletes the objects carrying install's labels (Selector):
// one revision's, or with Purge all. The namespace stays, as istioctl's.
// It returns what it deleted (or, with DryRun, would delete).
func (c *Client) Uninstall(ctx context.Context, o UninstallOptions) ([]string, error) {
	sel := o.Selector()
	var done []string
	for _, gvr := range PruneKinds {
		if gvr == crdResource && !o.Purge {
			continue
		}
		list, err := c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return done, fmt.Errorf("uninstall: list %s: %w", gvr.Resource, err)
		}
		for _, obj := range list.Items {
			what := describe(&obj)
			if obj.GetDeletionTimestamp() != nil {
				// Deleted before (an earlier uninstall): the API server is
				// finishing it, as a CRD's customresourcecleanup finalizer
				// does, with its own retries; deleting again changes nothing.
				if o.Log != nil {
					fmt.Fprintln(o.Log, "already being removed", what)
				}
				continue
			}
			if !o.DryRun {
				ri := c.Dynamic.Resource(gvr).Namespace(obj.GetNamespace())
				bg := metav1.DeletePropagationBackground
				if err := ri.Delete(ctx, obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
					return done, fmt.Errorf("uninstall: delete %s: %w", what, err)
				}
			}
			if o.Log != nil {
				fmt.Fprintln(o.Log, verb(o.DryRun), what)
			}
			done = append(done, what)
		}
	}
	slices.Sort(done)
	return done, nil
}

func verb(dry bool) string {
	if dry {
		return "would remove"
	}
	return "removed"
}

// Prune deletes what an earlier install of the manifest's revision made
// and the manifest no longer holds (a gateway a new profile drops), as
// istioctl install prunes: the objects labelled with the revision, but
// CRDs (shared by every revision) and revision tags (set by tag set).
func (c *Client) Prune(ctx context.Context, m *Manifest, log io.Writer) ([]string, error) {
	keep := map[string]bool{}
	for _, o := range m.Objects {
		keep[describe(o)] = true
	}
	sel := UninstallOptions{Revision: m.Revision}.Selector() + "," + "!" + LabelTag
	var done []string
	for _, gvr := range PruneKinds {
		if gvr == crdResource {
			continue
		}
		list, err := c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return done, fmt.Errorf("prune: list %s: %w", gvr.Resource, err)
		}
		for _, obj := range list.Items {
			what := describe(&obj)
			if keep[what] {
				continue
			}
			bg := metav1.DeletePropagationBackground
			if err := c.Dynamic.Resource(gvr).Namespace(obj.GetNamespace()).Delete(ctx, obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
				return done, fmt.Errorf("prune: delete %s: %w", what, err)
			}
			if log != nil {
				fmt.Fprintln(log, "pruned", what)
			}
			done = append(done, what)
		}
	}
	return done, nil
}
