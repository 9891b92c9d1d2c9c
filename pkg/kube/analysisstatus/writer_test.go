package analysisstatus_test

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/pkg/kube/analysisstatus"
)

var vsGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

// Messages land on the objects' status.validationMessages in Istio's
// shape; an object whose messages went is cleared; writing the same again
// changes nothing; a new writer (another leader) clears on its first
// write what an earlier one left on objects without messages.
func TestWriteValidationMessages(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	c.InstallIstioCRDs(t)
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig())
	newWriter := func() *analysisstatus.Writer {
		return &analysisstatus.Writer{Client: dyn, Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client(t).Discovery()))}
	}
	ref := func(name string) analysisstatus.Ref {
		return analysisstatus.Ref{Group: "networking.istio.io", Kind: "VirtualService", Namespace: "default", Name: name}
	}
	for _, name := range []string{"a", "b"} {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
			"metadata": map[string]any{"name": name, "namespace": "default"}, "spec": map[string]any{"hosts": []any{name + ".example.com"}}}}
		if _, err := dyn.Resource(vsGVR).Namespace("default").Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	messages := func(name string) string {
		u, err := dyn.Resource(vsGVR).Namespace("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m, _, _ := unstructured.NestedSlice(u.Object, "status", "validationMessages")
		return fmt.Sprint(m)
	}
	all := []analysisstatus.Ref{ref("a"), ref("b")}
	w := newWriter()
	ist0101 := []analysisstatus.Message{{Code: "IST0101", Level: "Error"}, {Code: "IST0101", Level: "Error"}, {Code: "IST0151", Level: "Warning"}}
	if n, err := w.Write(ctx, map[analysisstatus.Ref][]analysisstatus.Message{ref("a"): ist0101}, all); err != nil || n != 1 {
		t.Fatalf("first write: %d, %v", n, err)
	}
	want := "[map[documentationUrl:https://istio.io/latest/docs/reference/config/analysis/ist0101/ level:ERROR type:map[code:IST0101]] " +
		"map[documentationUrl:https://istio.io/latest/docs/reference/config/analysis/ist0101/ level:ERROR type:map[code:IST0101]] " +
		"map[documentationUrl:https://istio.io/latest/docs/reference/config/analysis/ist0151/ level:WARNING type:map[code:IST0151]]]"
	if got := messages("a"); got != want {
		t.Fatalf("a: %s\nwant %s", got, want)
	}
	if n, err := w.Write(ctx, map[analysisstatus.Ref][]analysisstatus.Message{ref("a"): ist0101}, all); err != nil || n != 0 {
		t.Fatalf("same again: %d updates, %v", n, err)
	}
	// a fixed, b broken.
	if n, err := w.Write(ctx, map[analysisstatus.Ref][]analysisstatus.Message{ref("b"): ist0101[:1]}, all); err != nil || n != 2 {
		t.Fatalf("a fixed, b broken: %d, %v", n, err)
	}
	if messages("a") != "[]" || messages("b") == "[]" {
		t.Fatalf("a %s, b %s", messages("a"), messages("b"))
	}
	// Another leader, b fixed meanwhile: its first write clears b.
	if n, err := newWriter().Write(ctx, nil, all); err != nil || n != 1 || messages("b") != "[]" {
		t.Fatalf("new writer: %d, %v; b %s", n, err, messages("b"))
	}
}
