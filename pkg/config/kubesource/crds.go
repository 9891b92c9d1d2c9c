package kubesource

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// watchCRDs starts, when a CRD of a kind the source wants but the API
// server did not serve at start becomes Established, that kind's
// informer, as istiod's crdclient starts an informer when its CRD
// appears (pkg/kube/kclient: NewDelayedInformer). Its objects then
// arrive as any others.
func (s *Source) watchCRDs(ctx context.Context, missing []watched) {
	if len(missing) == 0 {
		return
	}
	pending := map[string]watched{}
	for _, k := range missing {
		pending[groupResource(k)] = k
	}
	inf := dynamicinformer.NewFilteredDynamicInformer(s.dyn, crdResource, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	_ = inf.SetTransform(func(obj any) (any, error) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			u.SetManagedFields(nil)
		}
		return obj, nil
	})
	// Handlers run one at a time per informer: pending needs no lock.
	onCRD := func(obj any) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(u.Object, "spec", "names", "plural")
		k, wanted := pending[plural+"."+group]
		version := crdVersion(u)
		if !wanted || version == "" || !crdEstablished(u) {
			return
		}
		delete(pending, plural+"."+group)
		k.name = groupResource(k)
		s.opts.Logf("config: kubernetes: CRD %s installed; watching it", k.name)
		go s.newInformer(resolved{watched: k, gvr: schema.GroupVersionResource{Group: group, Version: version, Resource: plural}}).Run(ctx.Done())
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onCRD,
		UpdateFunc: func(_, obj any) { onCRD(obj) },
	})
	go inf.Run(ctx.Done())
}

// crdVersion is the version to watch a CRD at: its storage version when
// served, else its first served one.
func crdVersion(u *unstructured.Unstructured) string {
	versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	first := ""
	for _, v := range versions {
		m, _ := v.(map[string]any)
		name, _ := m["name"].(string)
		served, _ := m["served"].(bool)
		storage, _ := m["storage"].(bool)
		if !served {
			continue
		}
		if storage {
			return name
		}
		if first == "" {
			first = name
		}
	}
	return first
}

func crdEstablished(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
