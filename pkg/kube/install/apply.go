package install

import (
	"context"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Client is what install, uninstall and tag use of a cluster.
type Client struct {
	Dynamic dynamic.Interface
	Mapper  meta.ResettableRESTMapper
}

// NewClient makes a Client for cfg.
func NewClient(cfg *rest.Config) (*Client, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes discovery: %w", err)
	}
	return &Client{Dynamic: dyn, Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// resource is the client of obj's kind (in its namespace when namespaced).
func (c *Client) resource(obj *unstructured.Unstructured) (dynamic.ResourceInterface, schema.GroupVersionResource, error) {
	gvk := obj.GroupVersionKind()
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, schema.GroupVersionResource{}, fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.Dynamic.Resource(m.Resource).Namespace(obj.GetNamespace()), m.Resource, nil
	}
	return c.Dynamic.Resource(m.Resource), m.Resource, nil
}

// ApplyOptions configure Apply.
type ApplyOptions struct {
	// Log, if set, gets one line per object applied.
	Log io.Writer
	// CRDTimeout bounds the wait for the CRDs to be Established (default 1m).
	CRDTimeout time.Duration
}

// Apply server-side applies the manifest (field manager FieldManager,
// conflicts forced, as istioctl's), its release namespace created if
// missing (and left by uninstall, as istioctl leaves istio-system). CRDs
// go first and are waited for until Established, so the kinds they
// define can be applied after them.
func (c *Client) Apply(ctx context.Context, m *Manifest, namespace string, o ApplyOptions) error {
	if o.CRDTimeout == 0 {
		o.CRDTimeout = time.Minute
	}
	if err := c.ensureNamespace(ctx, namespace); err != nil {
		return err
	}
	var crds []string
	for i, obj := range m.Objects {
		if obj.GetKind() != "CustomResourceDefinition" && len(crds) > 0 {
			if err := c.waitEstablished(ctx, crds, o.CRDTimeout); err != nil {
				return err
			}
			crds = nil
			c.Mapper.Reset()
		}
		if err := c.applyOne(ctx, obj); err != nil {
			return err
		}
		if obj.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, obj.GetName())
		}
		if o.Log != nil {
			fmt.Fprintf(o.Log, "applied %s (%d/%d)\n", describe(obj), i+1, len(m.Objects))
		}
	}
	if len(crds) > 0 {
		return c.waitEstablished(ctx, crds, o.CRDTimeout)
	}
	return nil
}

func (c *Client) applyOne(ctx context.Context, obj *unstructured.Unstructured) error {
	ri, _, err := c.resource(obj)
	if err != nil {
		return fmt.Errorf("apply %w", err)
	}
	force := true
	if _, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: force}); err != nil {
		return fmt.Errorf("apply %s: %w", describe(obj), err)
	}
	return nil
}

var namespaces = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

func (c *Client) ensureNamespace(ctx context.Context, ns string) error {
	_, err := c.Dynamic.Resource(namespaces).Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
	if _, err := c.Dynamic.Resource(namespaces).Create(ctx, obj, metav1.CreateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func (c *Client) waitEstablished(ctx context.Context, names []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, name := range names {
		for {
			crd, err := c.Dynamic.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
			if err == nil && hasCondition(crd, "Established") {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CustomResourceDefinition %s not Established within %v (last error: %v)", name, timeout, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func hasCondition(obj *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ && m["status"] == "True" {
			return true
		}
	}
	return false
}

func describe(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return obj.GetKind() + " " + ns + "/" + obj.GetName()
	}
	return obj.GetKind() + " " + obj.GetName()
}
