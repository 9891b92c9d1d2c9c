package gwstatus

import (
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
)

// conditions merges desired into the conditions found at path of obj:
// each desired one set with meta.SetStatusCondition (its transition time
// kept while its status stays), every other type removed.
func conditions(existing any, gen int64, desired []gatewayapi.Condition) ([]any, error) {
	var list []metav1.Condition
	if items, ok := existing.([]any); ok {
		for _, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				continue
			}
			var c metav1.Condition
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &c); err != nil {
				continue // a malformed condition is replaced
			}
			list = append(list, c)
		}
	}
	keep := map[string]bool{}
	for _, d := range desired {
		keep[d.Type] = true
		meta.SetStatusCondition(&list, metav1.Condition{Type: d.Type, Status: metav1.ConditionStatus(d.Status),
			Reason: d.Reason, Message: d.Message, ObservedGeneration: gen})
	}
	out := make([]any, 0, len(list))
	for i := range list {
		if !keep[list[i].Type] {
			continue
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&list[i])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// setConditions sets the conditions at path (under obj) to desired.
func setConditions(obj map[string]any, gen int64, desired []gatewayapi.Condition, path ...string) error {
	existing, _, _ := unstructured.NestedFieldNoCopy(obj, path...)
	conds, err := conditions(existing, gen, desired)
	if err != nil {
		return err
	}
	return unstructured.SetNestedField(obj, conds, path...)
}

// applyGateway sets a Gateway's conditions, addresses and listeners.
func (w *Writer) applyGateway(obj *unstructured.Unstructured, g *gatewayapi.GatewayStatus) error {
	gen := obj.GetGeneration()
	conds := g.Conditions
	if w.Deployed != nil {
		addrs, deployed, ok := w.Deployed(g.Namespace, g.Name)
		if ok {
			conds = withDeployment(conds, deployed)
			// As istiod: no address until there is one, and once there is,
			// never none.
			if len(addrs) > 0 {
				list := make([]any, 0, len(addrs))
				for i := range addrs {
					m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&addrs[i])
					if err != nil {
						return err
					}
					list = append(list, m)
				}
				if err := unstructured.SetNestedSlice(obj.Object, list, "status", "addresses"); err != nil {
					return err
				}
			}
		}
	}
	if err := setConditions(obj.Object, gen, conds, "status", "conditions"); err != nil {
		return err
	}
	old := map[string]map[string]any{}
	if items, ok, _ := unstructured.NestedSlice(obj.Object, "status", "listeners"); ok {
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				if name, ok := m["name"].(string); ok {
					old[name] = m
				}
			}
		}
	}
	listeners := make([]any, 0, len(g.Listeners))
	for _, l := range g.Listeners {
		kinds := make([]any, 0, len(l.SupportedKinds))
		for _, k := range l.SupportedKinds {
			kinds = append(kinds, map[string]any{"group": Group, "kind": k})
		}
		var prev any
		if o := old[l.Name]; o != nil {
			prev = o["conditions"]
		}
		conds, err := conditions(prev, gen, l.Conditions)
		if err != nil {
			return err
		}
		listeners = append(listeners, map[string]any{"name": l.Name, "supportedKinds": kinds,
			"attachedRoutes": int64(l.AttachedRoutes), "conditions": conds})
	}
	return unstructured.SetNestedSlice(obj.Object, listeners, "status", "listeners")
}

// withDeployment replaces each True condition (a True Programmed: the
// config is served) with the deployment's of its type (its Service has
// addresses and ready endpoints, or why not; Accepted False for unusable
// parameters); a False one stays: the config's reason first.
func withDeployment(conds []gatewayapi.Condition, deployed []gatewayapi.Condition) []gatewayapi.Condition {
	out := make([]gatewayapi.Condition, len(conds))
	copy(out, conds)
	for i, c := range out {
		for _, d := range deployed {
			if c.Type == d.Type && c.Status == "True" {
				out[i] = d
			}
		}
	}
	return out
}

// applyRoute sets a route's parents sluice reports for, keeping the
// parents other controllers wrote.
func applyRoute(obj *unstructured.Unstructured, r *gatewayapi.RouteStatus) error {
	gen := obj.GetGeneration()
	ours := map[string]bool{gatewayapi.ControllerName: true, gatewayapi.IstioControllerName: true}
	existing, _, _ := unstructured.NestedSlice(obj.Object, "status", "parents")
	var parents []any
	for _, it := range existing {
		if m, ok := it.(map[string]any); ok {
			if c, _ := m["controllerName"].(string); !ours[c] {
				parents = append(parents, m)
			}
		}
	}
	for _, p := range r.Parents {
		ref, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&p.Ref)
		if err != nil {
			return fmt.Errorf("parent %s: %w", p.ParentRef, err)
		}
		// The CRD's defaults, as the API server stores them, so an
		// unchanged status compares equal.
		if _, ok := ref["group"]; !ok {
			ref["group"] = Group
		}
		if _, ok := ref["kind"]; !ok {
			ref["kind"] = "Gateway"
		}
		var prev any
		for _, it := range existing {
			if m, ok := it.(map[string]any); ok && m["controllerName"] == p.ControllerName && sameRef(m["parentRef"], ref) {
				prev = m["conditions"]
			}
		}
		conds, err := conditions(prev, gen, p.Conditions)
		if err != nil {
			return err
		}
		parents = append(parents, map[string]any{"parentRef": ref, "controllerName": p.ControllerName, "conditions": conds})
	}
	if parents == nil {
		parents = []any{}
	}
	return unstructured.SetNestedSlice(obj.Object, parents, "status", "parents")
}

// sameRef compares a parentRef read from the cluster (defaults filled in
// by the API server) with one as written: the fields written must match.
func sameRef(have any, want map[string]any) bool {
	m, ok := have.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range want {
		if !reflect.DeepEqual(m[k], v) {
			return false
		}
	}
	return true
}
