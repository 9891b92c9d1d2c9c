package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// Applier creates or replaces objects given as YAML through the API
// server, their status too (no kubelet or controllers run in tests), as
// `kubectl apply` would. Objects applied under a set name (ApplySet) are
// tracked: applying the set again deletes the objects it no longer holds,
// as a config file rewritten in place drops what it no longer defines.
type Applier struct {
	c      *Cluster
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper

	mu   sync.Mutex
	sets map[string][]objectRef
}

// objectRef names one applied object.
type objectRef struct {
	resource        dynamic.NamespaceableResourceInterface
	namespace, name string
	kind            string
	namespaced      bool
}

var (
	namespaceResource      = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	serviceAccountResource = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
)

// NewApplier returns an Applier for the cluster.
func (c *Cluster) NewApplier(t testing.TB) *Applier {
	t.Helper()
	return &Applier{c: c, dyn: dynamic.NewForConfigOrDie(c.RESTConfig()),
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client(t).Discovery())),
		sets:   map[string][]objectRef{}}
}

// Apply applies every document of y, failing the test on an error.
func (a *Applier) Apply(t testing.TB, y string) {
	t.Helper()
	if _, err := a.apply(context.Background(), y); err != nil {
		t.Fatal(err)
	}
}

// ApplySet applies the documents of y as the set name: objects an earlier
// ApplySet of name held and y does not are deleted. Namespaces the objects
// name are created when missing (with their default ServiceAccount).
func (a *Applier) ApplySet(ctx context.Context, name, y string) error {
	refs, err := a.apply(ctx, y)
	if err != nil {
		return fmt.Errorf("apply %s: %w", name, err)
	}
	a.mu.Lock()
	old := a.sets[name]
	a.sets[name] = refs
	a.mu.Unlock()
	return a.deleteAbsent(ctx, old, refs)
}

// DeleteSet deletes every object of the set name.
func (a *Applier) DeleteSet(ctx context.Context, name string) error {
	a.mu.Lock()
	old := a.sets[name]
	delete(a.sets, name)
	a.mu.Unlock()
	return a.deleteAbsent(ctx, old, nil)
}

// DeleteAll deletes every object of every set (a test's clean-up).
func (a *Applier) DeleteAll(ctx context.Context) error {
	a.mu.Lock()
	names := make([]string, 0, len(a.sets))
	for n := range a.sets {
		names = append(names, n)
	}
	a.mu.Unlock()
	var errs []error
	for _, n := range names {
		errs = append(errs, a.DeleteSet(ctx, n))
	}
	return errors.Join(errs...)
}

func (a *Applier) deleteAbsent(ctx context.Context, old, keep []objectRef) error {
	held := map[string]bool{}
	for _, r := range keep {
		held[r.key()] = true
	}
	for _, r := range old {
		if held[r.key()] {
			continue
		}
		ri := r.client()
		if err := ri.Delete(ctx, r.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s %s/%s: %w", r.kind, r.namespace, r.name, err)
		}
	}
	return nil
}

func (r objectRef) key() string { return r.kind + "/" + r.namespace + "/" + r.name }

func (r objectRef) client() dynamic.ResourceInterface {
	if r.namespaced {
		return r.resource.Namespace(r.namespace)
	}
	return r.resource
}

// apply creates or replaces each document's object and returns them.
func (a *Applier) apply(ctx context.Context, y string) ([]objectRef, error) {
	objs, err := decodeObjects([]byte(y))
	if err != nil {
		return nil, err
	}
	refs := make([]objectRef, 0, len(objs))
	for _, u := range objs {
		ref, err := a.applyOne(ctx, u)
		if err != nil {
			return refs, fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

func (a *Applier) applyOne(ctx context.Context, u *unstructured.Unstructured) (objectRef, error) {
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		// A CRD installed after the mapper's first discovery.
		a.mapper.Reset()
		if m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return objectRef{}, err
		}
	}
	ref := objectRef{resource: a.dyn.Resource(m.Resource), name: u.GetName(), kind: gvk.Kind,
		namespaced: m.Scope.Name() == meta.RESTScopeNameNamespace}
	if ref.namespaced {
		if u.GetNamespace() == "" {
			u.SetNamespace("default")
		}
		ref.namespace = u.GetNamespace()
		if err := a.ensureNamespace(ctx, ref.namespace); err != nil {
			return ref, err
		}
	}
	ri := ref.client()
	status := u.Object["status"]
	got, err := ri.Create(ctx, u, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		if gerr != nil {
			return ref, gerr
		}
		u.SetResourceVersion(cur.GetResourceVersion())
		got, err = ri.Update(ctx, u, metav1.UpdateOptions{})
	}
	if err != nil {
		return ref, err
	}
	if status != nil {
		got.Object["status"] = status
		if _, err := ri.UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			return ref, fmt.Errorf("status: %w", err)
		}
	}
	return ref, nil
}

// ensureNamespace creates namespace ns and its default ServiceAccount when
// missing (Cluster.CreateNamespace without a testing.TB).
func (a *Applier) ensureNamespace(ctx context.Context, ns string) error {
	nsRes := a.dyn.Resource(namespaceResource)
	if _, err := nsRes.Get(ctx, ns, metav1.GetOptions{}); err == nil {
		return nil
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
	if _, err := nsRes.Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	sa := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ServiceAccount",
		"metadata": map[string]any{"name": "default", "namespace": ns}}}
	if _, err := a.dyn.Resource(serviceAccountResource).Namespace(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: default ServiceAccount: %w", ns, err)
	}
	return nil
}

// decodeObjects reads every object of a multi-document YAML text.
func decodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		obj := map[string]any{}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, err
		}
		if len(obj) > 0 {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}

// Dynamic is the Applier's dynamic client, for reading objects back.
func (a *Applier) Dynamic() dynamic.Interface { return a.dyn }
