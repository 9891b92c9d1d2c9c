package gwstatus_test

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
	"github.com/sluice-mesh/sluice/pkg/kube/gwstatus"
)

var (
	gatewaysGVR = schema.GroupVersionResource{Group: gwstatus.Group, Version: "v1", Resource: "gateways"}
	routesGVR   = schema.GroupVersionResource{Group: gwstatus.Group, Version: "v1", Resource: "httproutes"}
	classesGVR  = schema.GroupVersionResource{Group: gwstatus.Group, Version: "v1", Resource: "gatewayclasses"}
)

func create(t *testing.T, ri dynamic.ResourceInterface, obj map[string]any) *unstructured.Unstructured {
	t.Helper()
	u, err := ri.Create(context.Background(), &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func get(t *testing.T, ri dynamic.ResourceInterface, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := ri.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func condition(t *testing.T, conds []any, typ string) map[string]any {
	t.Helper()
	for _, c := range conds {
		if m := c.(map[string]any); m["type"] == typ {
			return m
		}
	}
	t.Fatalf("no %s condition in %v", typ, conds)
	return nil
}

// Istio's default GatewayClasses are created once; computed status lands
// on the cluster's GatewayClass, Gateway (and listeners) and HTTPRoute,
// with observedGeneration; writing the same status again changes nothing;
// a changed condition moves its lastTransitionTime only; another
// controller's route parent is kept; objects the cluster lacks are skipped.
func TestWriteGatewayAPIStatus(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	c.InstallGatewayAPICRDs(t)
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client(t).Discovery()))
	w := &gwstatus.Writer{Client: dyn, Mapper: mapper}

	created, err := w.EnsureDefaultClasses(ctx)
	if err != nil || !slices.Equal(created, []string{"istio", "istio-waypoint"}) {
		t.Fatalf("default classes: %v, %v", created, err)
	}
	if again, err := w.EnsureDefaultClasses(ctx); err != nil || len(again) != 0 {
		t.Fatalf("default classes created twice: %v, %v", again, err)
	}

	gws, routes := dyn.Resource(gatewaysGVR).Namespace("default"), dyn.Resource(routesGVR).Namespace("default")
	create(t, gws, map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
		"metadata": map[string]any{"name": "gw"},
		"spec": map[string]any{"gatewayClassName": "istio",
			"listeners": []any{map[string]any{"name": "http", "port": int64(80), "protocol": "HTTP"}}}})
	route := create(t, routes, map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "r"},
		"spec":     map[string]any{"parentRefs": []any{map[string]any{"name": "gw"}}}})
	// Another controller already reports on the route.
	route.Object["status"] = map[string]any{"parents": []any{map[string]any{
		"parentRef": map[string]any{"name": "other"}, "controllerName": "example.com/other",
		"conditions": []any{map[string]any{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
			"lastTransitionTime": "2020-01-01T00:00:00Z"}}}}}
	if _, err := routes.UpdateStatus(ctx, route, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	accepted := gatewayapi.Condition{Type: "Accepted", Status: "True", Reason: "Accepted"}
	programmed := gatewayapi.Condition{Type: "Programmed", Status: "True", Reason: "Programmed"}
	st := &gatewayapi.Status{
		GatewayClasses: []*gatewayapi.GatewayClassStatus{{Name: "istio", ControllerName: gatewayapi.IstioControllerName,
			Conditions: []gatewayapi.Condition{accepted}}},
		Gateways: []*gatewayapi.GatewayStatus{{Namespace: "default", Name: "gw", Class: "istio",
			Conditions: []gatewayapi.Condition{accepted, programmed},
			Listeners: []*gatewayapi.ListenerStatus{{Name: "http", Port: 80, Protocol: "HTTP", SupportedKinds: []string{"HTTPRoute"},
				AttachedRoutes: 1, Conditions: []gatewayapi.Condition{accepted, programmed}}}},
			{Namespace: "default", Name: "from-a-folder", Conditions: []gatewayapi.Condition{accepted}}},
		Routes: []*gatewayapi.RouteStatus{{Kind: "HTTPRoute", Namespace: "default", Name: "r",
			Parents: []*gatewayapi.RouteParentStatus{{ControllerName: gatewayapi.ControllerName,
				Ref: gwv1.ParentReference{Name: "gw"}, Conditions: []gatewayapi.Condition{accepted}}}}},
	}
	res, err := w.Write(ctx, st)
	if err != nil || res.Updated != 3 || res.Missing != 1 {
		t.Fatalf("first write: %+v, %v", res, err)
	}
	gw := get(t, gws, "gw")
	conds, _, _ := unstructured.NestedSlice(gw.Object, "status", "conditions")
	if p := condition(t, conds, "Programmed"); p["status"] != "True" || p["observedGeneration"] != gw.GetGeneration() {
		t.Fatalf("gateway Programmed: %v (generation %d)", p, gw.GetGeneration())
	}
	listeners, _, _ := unstructured.NestedSlice(gw.Object, "status", "listeners")
	if len(listeners) != 1 || listeners[0].(map[string]any)["attachedRoutes"] != int64(1) {
		t.Fatalf("listeners: %v", listeners)
	}
	parents, _, _ := unstructured.NestedSlice(get(t, routes, "r").Object, "status", "parents")
	if len(parents) != 2 {
		t.Fatalf("route parents (other controller's kept, ours added): %v", parents)
	}
	classConds, _, _ := unstructured.NestedSlice(get(t, dyn.Resource(classesGVR), "istio").Object, "status", "conditions")
	condition(t, classConds, "Accepted")

	if res, err := w.Write(ctx, st); err != nil || res.Updated != 0 || res.Unchanged != 3 {
		t.Fatalf("same status again: %+v, %v", res, err)
	}

	// Programmed turns False: its transition time moves, Accepted's stays.
	before := condition(t, conds, "Accepted")["lastTransitionTime"]
	time.Sleep(1100 * time.Millisecond) // transition times have second precision
	st.Gateways[0].Conditions[1] = gatewayapi.Condition{Type: "Programmed", Status: "False", Reason: "Invalid", Message: "no address"}
	if res, err := w.Write(ctx, st); err != nil || res.Updated != 1 {
		t.Fatalf("changed status: %+v, %v", res, err)
	}
	conds, _, _ = unstructured.NestedSlice(get(t, gws, "gw").Object, "status", "conditions")
	if p := condition(t, conds, "Programmed"); p["status"] != "False" || p["lastTransitionTime"] == condition(t, conds, "Accepted")["lastTransitionTime"] {
		t.Fatalf("Programmed after the change: %v", p)
	}
	if a := condition(t, conds, "Accepted"); a["lastTransitionTime"] != before {
		t.Fatalf("Accepted's transition time moved: %v -> %v", before, a["lastTransitionTime"])
	}
}
