package filesource

import (
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// sidecar is a Sidecar for workloads labelled app=name whose one egress
// listener imports host; an empty host makes it invalid (an egress
// listener needs at least one host).
func sidecar(name, host string) string {
	hosts := "[]"
	if host != "" {
		hosts = "[\"" + host + "\"]"
	}
	return `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ` + name + `, namespace: shop}
spec:
  workloadSelector: {labels: {app: ` + name + `}}
  egress:
  - hosts: ` + hosts + `
`
}

const authz = `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: deny-all, namespace: shop}
spec: {}
`

func load(t *testing.T, s *Source) Snapshot {
	t.Helper()
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// egressOf is the egress host of Sidecar shop/name, "" when absent.
func egressOf(snap Snapshot, name string) string {
	r := find(snap, config.KindSidecar, "shop", name)
	if r == nil {
		return ""
	}
	return strings.Join(r.Spec.(*networking.Sidecar).GetEgress()[0].GetHosts(), ",")
}

// One invalid document rejects only its own resource; a valid one beside
// it applies, and the invalid one keeps its last good version.
func TestPerResourceAdmission(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "sidecars.yaml", sidecar("ratings", "./*")+"---\n"+sidecar("reviews", ""))
	s := newSource(t, dir)
	snap := load(t, s)
	if egressOf(snap, "ratings") != "./*" {
		t.Errorf("valid Sidecar beside an invalid one not applied: %v", snap.Resources)
	}
	if find(snap, config.KindSidecar, "shop", "reviews") != nil {
		t.Error("invalid Sidecar applied")
	}
	if !hasError(snap, "sidecars.yaml", "spec.egress[0].hosts", "Sidecar shop/reviews") {
		t.Errorf("invalid Sidecar not reported: %v", snap.Errors)
	}

	// Both good, then reviews edited badly while ratings changes: ratings'
	// edit applies, reviews keeps its last good version.
	write(t, dir, "sidecars.yaml", sidecar("ratings", "./*")+"---\n"+sidecar("reviews", "istio-system/*"))
	snap = load(t, s)
	if egressOf(snap, "reviews") != "istio-system/*" || len(snap.Errors) != 0 {
		t.Fatalf("fixed file: reviews %q errors %v", egressOf(snap, "reviews"), snap.Errors)
	}
	write(t, dir, "sidecars.yaml", sidecar("ratings", "shop/*")+"---\n"+sidecar("reviews", ""))
	snap = load(t, s)
	if egressOf(snap, "ratings") != "shop/*" {
		t.Errorf("ratings' edit not applied beside the invalid reviews: %q", egressOf(snap, "ratings"))
	}
	if egressOf(snap, "reviews") != "istio-system/*" {
		t.Errorf("reviews' last good version not kept: %q", egressOf(snap, "reviews"))
	}
	if !hasError(snap, "sidecars.yaml", "spec.egress[0].hosts", "Sidecar shop/reviews") {
		t.Errorf("invalid Sidecar not reported: %v", snap.Errors)
	}

	// Removing a resource from a file that reads removes it, even when the
	// file has another problem.
	write(t, dir, "sidecars.yaml", sidecar("ratings", ""))
	snap = load(t, s)
	if find(snap, config.KindSidecar, "shop", "reviews") != nil {
		t.Error("Sidecar removed from the file is still applied")
	}
	if egressOf(snap, "ratings") != "shop/*" {
		t.Errorf("ratings' last good version not kept: %q", egressOf(snap, "ratings"))
	}
}

// A document that cannot be attributed to any resource keeps what the
// file defined before and does not define now, and says so; the
// resources that do read apply.
func TestUnattributableDocumentKeepsAbsentResources(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "sidecars.yaml", sidecar("ratings", "./*")+"---\n"+sidecar("reviews", "./*"))
	s := newSource(t, dir)
	load(t, s)

	// reviews' document is broken YAML: nothing says which resource it is.
	write(t, dir, "sidecars.yaml", sidecar("ratings", "shop/*")+"---\nkind: Sidecar\nmetadata: [\n")
	snap := load(t, s)
	if egressOf(snap, "ratings") != "shop/*" {
		t.Errorf("ratings' edit not applied: %q", egressOf(snap, "ratings"))
	}
	if egressOf(snap, "reviews") != "./*" {
		t.Errorf("reviews dropped although its document may be the broken one: %v", snap.Resources)
	}
	if !hasError(snap, "sidecars.yaml", "", "YAML") {
		t.Errorf("broken document not reported: %v", snap.Errors)
	}
	if !hasError(snap, "sidecars.yaml", "", "last good version: Sidecar shop/reviews") {
		t.Errorf("keeping reviews not reported: %v", snap.Errors)
	}

	// Fixed without reviews: it is gone.
	write(t, dir, "sidecars.yaml", sidecar("ratings", "shop/*"))
	snap = load(t, s)
	if find(snap, config.KindSidecar, "shop", "reviews") != nil || len(snap.Errors) != 0 {
		t.Errorf("after the fix: %v %v", snap.Resources, snap.Errors)
	}
}

// Recognised kinds sluice does not enforce are carried in the snapshot
// with their file, and go with it.
func TestNotEnforcedCarried(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "policy.yaml", authz+"---\n"+sidecar("ratings", "./*"))
	s := newSource(t, dir)
	snap := load(t, s)
	if len(snap.NotEnforced) != 1 {
		t.Fatalf("not enforced: %v", snap.NotEnforced)
	}
	ne := snap.NotEnforced[0]
	if ne.Kind != "extensions.istio.io/WasmPlugin" || ne.Namespace != "shop" || ne.Name != "deny-all" ||
		!strings.Contains(ne.File, "policy.yaml") || ne.Reason == "" {
		t.Errorf("not enforced entry: %+v", ne)
	}
	if egressOf(snap, "ratings") != "./*" || len(snap.Errors) != 0 {
		t.Errorf("resources %v errors %v", snap.Resources, snap.Errors)
	}
	write(t, dir, "policy.yaml", sidecar("ratings", "./*"))
	if snap = load(t, s); len(snap.NotEnforced) != 0 {
		t.Errorf("not enforced after removal: %v", snap.NotEnforced)
	}
}
