package registry

import (
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// dump writes everything a registry answers, in order, so two registries
// can be compared by value.
func dump(r *Registry) string {
	var b strings.Builder
	for _, s := range r.Services() {
		fmt.Fprintf(&b, "%s@%s %v %v res=%v ext=%v export=%v src=%v sans=%v\n", s.Hostname, s.Namespace,
			s.Addresses, s.Ports, s.Resolution, s.MeshExternal, s.ExportTo, s.Source, s.SubjectAltNames)
		var hostNS []string
		for _, o := range r.ServicesForHost(s.Hostname) {
			hostNS = append(hostNS, o.Namespace)
		}
		fmt.Fprintf(&b, "  byHost %v\n", hostNS)
		for _, p := range s.Ports {
			for _, e := range r.Endpoints(s, p.Number) {
				fmt.Fprintf(&b, "  %d: %s:%d %v %s w=%d sa=%s %s\n", p.Number, e.Address, e.Port,
					sortedLabels(e.Labels), e.Locality, e.Weight, e.ServiceAccount, e.Workload)
			}
		}
	}
	return b.String()
}

func sortedLabels(m map[string]string) string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// mesh is a random-ish set of resources the test mutates step by step.
type mesh struct {
	rnd *rand.Rand
	res map[config.Key]*config.Resource
	// reversed lists resources in reverse key order: a consistent order
	// that is not config.SortResources'.
	reversed bool
}

var (
	testNamespaces = []string{"a", "b"}
	testApps       = []string{"web", "api", "db"}
)

func (m *mesh) pick(list []string) string { return list[m.rnd.Intn(len(list))] }

func (m *mesh) workloadEntry(name string) *config.Resource {
	ns := m.pick(testNamespaces)
	spec := &networking.WorkloadEntry{
		Address:        fmt.Sprintf("10.0.%d.%d", m.rnd.Intn(3), m.rnd.Intn(5)),
		Labels:         map[string]string{"app": m.pick(testApps)},
		ServiceAccount: m.pick([]string{"", "sa1", "sa2"}),
		Weight:         uint32(m.rnd.Intn(3)),
	}
	if m.rnd.Intn(2) == 0 {
		spec.Labels["version"] = m.pick([]string{"v1", "v2"})
	}
	if m.rnd.Intn(3) == 0 {
		spec.Ports = map[string]uint32{"http": 9080}
	}
	meta := map[string]string{}
	if m.rnd.Intn(3) == 0 {
		meta["app"] = m.pick(testApps) // spec labels win
		meta["tier"] = "x"
	}
	return &config.Resource{Kind: config.KindWorkloadEntry,
		Meta: config.Meta{Name: name, Namespace: ns, Labels: meta}, Spec: spec}
}

func (m *mesh) kubeService(name string) *config.Resource {
	ns := m.pick(testNamespaces)
	spec := &corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.0.%d", m.rnd.Intn(200)),
		Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt(8080)}}}
	if m.rnd.Intn(2) == 0 {
		spec.Ports = append(spec.Ports, corev1.ServicePort{Name: "tcp-x", Port: 9000})
	}
	if m.rnd.Intn(5) != 0 {
		spec.Selector = map[string]string{"app": m.pick(testApps)}
		if m.rnd.Intn(3) == 0 {
			spec.Selector["version"] = m.pick([]string{"v1", "v2"})
		}
	}
	return &config.Resource{Kind: config.KindService, Meta: config.Meta{Name: name, Namespace: ns}, Spec: spec}
}

func (m *mesh) serviceEntry(name string) *config.Resource {
	ns := m.pick(testNamespaces)
	spec := &networking.ServiceEntry{
		// Shared hosts make several sources merge into one endpoint list.
		Hosts:      []string{m.pick([]string{"x.example.com", "y.example.com"}), name + ".example.com"},
		Ports:      []*networking.ServicePort{{Name: "http", Number: 80, Protocol: "HTTP"}},
		Resolution: networking.ServiceEntry_STATIC,
	}
	switch m.rnd.Intn(3) {
	case 0:
		spec.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"app": m.pick(testApps)}}
	case 1:
		spec.Endpoints = []*networking.WorkloadEntry{{Address: "192.168.0.1"}, {Address: "192.168.0.0"}}
	default:
		spec.Resolution = networking.ServiceEntry_DNS
		if m.rnd.Intn(2) == 0 {
			spec.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"app": m.pick(testApps)}}
		}
	}
	return &config.Resource{Kind: config.KindServiceEntry, Meta: config.Meta{Name: name, Namespace: ns}, Spec: spec}
}

// step adds, replaces or removes one to three resources and returns the
// keys it changed.
func (m *mesh) step() map[config.Key]struct{} {
	changed := map[config.Key]struct{}{}
	for n := 1 + m.rnd.Intn(3); n > 0; n-- {
		var r *config.Resource
		switch k := m.rnd.Intn(10); {
		case k < 6:
			r = m.workloadEntry(fmt.Sprintf("we%d", m.rnd.Intn(12)))
		case k < 8:
			r = m.kubeService(fmt.Sprintf("svc%d", m.rnd.Intn(5)))
		default:
			r = m.serviceEntry(fmt.Sprintf("se%d", m.rnd.Intn(4)))
		}
		// The same name in the other namespace is another resource; a
		// third of the time the step removes instead.
		if old, ok := m.res[r.Key()]; ok && m.rnd.Intn(3) == 0 {
			delete(m.res, old.Key())
		} else {
			m.res[r.Key()] = r
		}
		changed[r.Key()] = struct{}{}
	}
	return changed
}

func (m *mesh) resources() []*config.Resource {
	out := make([]*config.Resource, 0, len(m.res))
	for _, r := range m.res {
		out = append(out, r)
	}
	config.SortResources(out)
	if m.reversed {
		slices.Reverse(out)
	}
	return out
}

// TestDeriveEqualsBuild follows random change sequences: after every step
// the registry derived from the previous one equals a fresh Build and
// the Build before the WorkloadEntry index.
func TestDeriveEqualsBuild(t *testing.T) {
	for seed := int64(1); seed <= 60; seed++ {
		m := &mesh{rnd: rand.New(rand.NewSource(seed)), res: map[config.Key]*config.Resource{}, reversed: seed%3 == 0}
		for i := 0; i < 6; i++ {
			m.step()
		}
		reg := Build(m.resources(), BuildOptions{})
		for i := 0; i < 30; i++ {
			changed := m.step()
			resources := m.resources()
			derived := Derive(reg, resources, changed)
			fresh, legacy := dump(Build(resources, BuildOptions{})), dump(legacyBuild(resources, BuildOptions{}))
			if fresh != legacy {
				t.Fatalf("seed %d step %d: Build differs from the legacy build:\n%s\nlegacy:\n%s", seed, i, fresh, legacy)
			}
			if got := dump(derived); got != fresh {
				t.Fatalf("seed %d step %d: changed %v: derived registry differs from Build:\n%s\nBuild:\n%s", seed, i, changed, got, fresh)
			}
			reg = derived
		}
	}
}

// TestDeriveShares: a WorkloadEntry change rebuilds only the endpoints of
// the services selecting it; the service list and the other services'
// endpoint lists are the previous registry's.
func TestDeriveShares(t *testing.T) {
	svc := func(name, app string) *config.Resource {
		return &config.Resource{Kind: config.KindService, Meta: config.Meta{Name: name, Namespace: "a"},
			Spec: &corev1.ServiceSpec{Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	}
	we := func(name, app, addr string) *config.Resource {
		return &config.Resource{Kind: config.KindWorkloadEntry, Meta: config.Meta{Name: name, Namespace: "a"},
			Spec: &networking.WorkloadEntry{Address: addr, Labels: map[string]string{"app": app}}}
	}
	before := []*config.Resource{svc("api", "api"), svc("web", "web"), we("api-1", "api", "10.0.0.1"), we("web-1", "web", "10.0.0.2")}
	config.SortResources(before)
	prev := Build(before, BuildOptions{})
	after := []*config.Resource{before[0], before[1], we("api-1", "api", "10.0.0.9"), before[3]}
	config.SortResources(after)
	next := Derive(prev, after, map[config.Key]struct{}{{Kind: config.KindWorkloadEntry, Namespace: "a", Name: "api-1"}: {}})
	if &next.Services()[0] != &prev.Services()[0] {
		t.Errorf("service list rebuilt for a WorkloadEntry change")
	}
	web, api := service(t, next, "web.a.svc.cluster.local", "a"), service(t, next, "api.a.svc.cluster.local", "a")
	if got, want := next.Endpoints(web, 80), prev.Endpoints(web, 80); &got[0] != &want[0] {
		t.Errorf("web's endpoints rebuilt though api-1 does not match its selector")
	}
	if got := endpoints(next, api, 80); got != "10.0.0.9:80(a/api-1)" {
		t.Errorf("api endpoints = %s", got)
	}
	if got := endpoints(prev, api, 80); got != "10.0.0.1:80(a/api-1)" {
		t.Errorf("previous registry changed: %s", got)
	}
}
