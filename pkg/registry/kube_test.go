package registry

import (
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// describe lists a port's endpoints with what they took from Pod and Node.
func describe(r *Registry, s *Service, port uint32) string {
	var out []string
	for _, e := range r.Endpoints(s, port) {
		out = append(out, fmt.Sprintf("%s:%d sa=%s loc=%s labels=%s w=%s", e.Address, e.Port, e.ServiceAccount,
			e.Locality, sortedLabels(e.Labels), e.Workload))
	}
	return strings.Join(out, "\n")
}

// TestKubeEndpointSlices: a Service's endpoints are its slices' ready
// endpoints (not-ready and terminating ones excluded, a targetRef to a
// missing Pod skipped), per port by name, with labels and service account
// from the Pod and locality from its Node; no endpoint is made from the
// Pods the selector matches.
func TestKubeEndpointSlices(t *testing.T) {
	r := build(t, readTestdata(t, "kube.yaml"))
	svc := service(t, r, "reviews.shop.svc.cluster.local", "shop")
	want := strings.Join([]string{
		"10.1.0.1:9080 sa=reviews loc=eu/eu-1/rack7 labels=app=reviews,version=v1 w=shop/reviews-1",
		"10.1.0.2:9080 sa=default loc=us// labels=app=reviews,version=v2 w=shop/reviews-2",
		"10.1.0.6:9080 sa= loc= labels= w=shop/reviews-abc",
		"fd00::1:9080 sa=reviews loc=eu/eu-1/rack7 labels=app=reviews,version=v1 w=shop/reviews-1",
	}, "\n")
	if got := describe(r, svc, 80); got != want {
		t.Errorf("reviews:80 endpoints\n%s\nwant\n%s", got, want)
	}
	if got := endpoints(r, svc, 9000); got != "10.1.0.1:9901(shop/reviews-1) 10.1.0.2:9901(shop/reviews-2) 10.1.0.6:9901(shop/reviews-abc)" {
		t.Errorf("reviews:9000 endpoints = %s", got)
	}
	db := service(t, r, "db.shop.svc.cluster.local", "shop")
	if db.Resolution != ResolutionNone || len(db.Addresses) != 0 {
		t.Errorf("headless db: resolution %v addresses %v", db.Resolution, db.Addresses)
	}
	if got := endpoints(r, db, 5432); got != "10.2.0.1:5432(shop/db-1) 10.2.0.2:5432(shop/db-1)" {
		t.Errorf("db endpoints = %s", got)
	}
	ext := service(t, r, "ext.shop.svc.cluster.local", "shop")
	if ext.Resolution != ResolutionDNS || !ext.MeshExternal {
		t.Errorf("ExternalName: resolution %v external %v", ext.Resolution, ext.MeshExternal)
	}
	if got := endpoints(r, ext, 443); got != "api.example.com:443(shop/ext)" {
		t.Errorf("ext endpoints = %s", got)
	}
}

// TestKubeSliceWithoutPortNumber: a slice port without number takes the
// Service's targetPort, a name resolved against the Pod's container ports.
func TestKubeSliceWithoutPortNumber(t *testing.T) {
	yaml := strings.Replace(readTestdata(t, "kube.yaml"), "- {name: http, port: 9080, protocol: TCP}", "- {name: http}", 1)
	r := build(t, yaml)
	svc := service(t, r, "reviews.shop.svc.cluster.local", "shop")
	// reviews-1 and -2 name the port web; the Pod-less endpoint has no Pod to ask.
	if got := endpoints(r, svc, 80); got != "10.1.0.1:9080(shop/reviews-1) 10.1.0.2:9080(shop/reviews-2) fd00::1:9080(shop/reviews-1)" {
		t.Errorf("reviews:80 endpoints = %s", got)
	}
}

// kubeStep changes one Pod, Node or EndpointSlice of namespace "a" (or
// removes it) and returns its key.
func (m *mesh) kubeStep() config.Key {
	var r *config.Resource
	switch m.rnd.Intn(3) {
	case 0:
		n := m.rnd.Intn(4)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod%d", n), Namespace: "a",
			Labels: map[string]string{"app": m.pick(testApps), "version": m.pick([]string{"v1", "v2"})}},
			Spec: corev1.PodSpec{NodeName: m.pick([]string{"n1", "n2", ""}), ServiceAccountName: m.pick([]string{"", "sa1", "sa2"}),
				Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(8080 + m.rnd.Intn(2))}}}}}}
		r = &config.Resource{Kind: config.KindPod, Meta: config.Meta{Name: pod.Name, Namespace: "a", Labels: pod.Labels}, Spec: pod}
	case 1:
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: m.pick([]string{"n1", "n2"}),
			Labels: map[string]string{config.LabelRegion: m.pick([]string{"eu", "us"}), config.LabelZone: m.pick([]string{"", "z1"})}}}
		r = &config.Resource{Kind: config.KindNode, Meta: config.Meta{Name: node.Name, Labels: node.Labels}, Spec: node}
	default:
		name := fmt.Sprintf("slice%d", m.rnd.Intn(4))
		svc := fmt.Sprintf("svc%d", m.rnd.Intn(5))
		slice := &discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4}
		for i := m.rnd.Intn(4); i > 0; i-- {
			e := discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.9.0.%d", m.rnd.Intn(6))}}
			if m.rnd.Intn(4) != 0 {
				e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: fmt.Sprintf("pod%d", m.rnd.Intn(5))}
			}
			if m.rnd.Intn(4) == 0 {
				e.Conditions.Ready = new(bool)
			}
			slice.Endpoints = append(slice.Endpoints, e)
		}
		http, tcp := "http", "tcp-x"
		slice.Ports = []discoveryv1.EndpointPort{{Name: &http}, {Name: &tcp, Port: new(int32)}}
		*slice.Ports[1].Port = 9000
		if m.rnd.Intn(2) == 0 {
			slice.Ports[0].Port = new(int32)
			*slice.Ports[0].Port = 7070
		}
		r = &config.Resource{Kind: config.KindEndpointSlice, Meta: config.Meta{Name: name, Namespace: "a",
			Labels: map[string]string{config.LabelServiceName: svc}}, Spec: slice}
	}
	if old, ok := m.res[r.Key()]; ok && m.rnd.Intn(4) == 0 {
		delete(m.res, old.Key())
	} else {
		m.res[r.Key()] = r
	}
	return r.Key()
}

// TestDeriveEqualsBuildKube: random sequences mixing Pods, Nodes and
// EndpointSlices with Services, ServiceEntries and WorkloadEntries; after
// every step the derived registry equals a fresh Build.
func TestDeriveEqualsBuildKube(t *testing.T) {
	for seed := int64(1); seed <= 60; seed++ {
		m := &mesh{rnd: rand.New(rand.NewSource(seed)), res: map[config.Key]*config.Resource{}, reversed: seed%3 == 0}
		for i := 0; i < 6; i++ {
			m.step()
			m.kubeStep()
		}
		reg := Build(m.resources(), BuildOptions{})
		for i := 0; i < 40; i++ {
			changed := map[config.Key]struct{}{}
			if m.rnd.Intn(3) == 0 {
				changed = m.step()
			}
			for n := 1 + m.rnd.Intn(2); n > 0; n-- {
				changed[m.kubeStep()] = struct{}{}
			}
			resources := m.resources()
			derived := Derive(reg, resources, changed)
			if got, want := dump(derived), dump(Build(resources, BuildOptions{})); got != want {
				t.Fatalf("seed %d step %d: changed %v: derived registry differs from Build:\n%s\nBuild:\n%s", seed, i, changed, got, want)
			}
			reg = derived
		}
	}
}

// TestDeriveKubeShares: a Pod label change re-reads only the Services
// whose slices name the Pod.
func TestDeriveKubeShares(t *testing.T) {
	yaml := readTestdata(t, "kube.yaml")
	decode := func(y string) []*config.Resource {
		res := config.Decode([]byte(y), config.DecodeOptions{File: "kube.yaml"})
		if len(res.Errors) > 0 {
			t.Fatal(res.Errors)
		}
		config.SortResources(res.Resources)
		return res.Resources
	}
	before := decode(yaml)
	prev := Build(before, BuildOptions{})
	after := decode(strings.Replace(yaml, "labels: {app: reviews, version: v1}", "labels: {app: reviews, version: v9}", 1))
	next := Derive(prev, after, map[config.Key]struct{}{{Kind: config.KindPod, Namespace: "shop", Name: "reviews-1"}: {}})
	db := service(t, next, "db.shop.svc.cluster.local", "shop")
	if got, was := next.Endpoints(db, 5432), prev.Endpoints(db, 5432); &got[0] != &was[0] {
		t.Errorf("db's endpoints rebuilt for a Pod its slices do not name")
	}
	reviews := service(t, next, "reviews.shop.svc.cluster.local", "shop")
	if got := next.Endpoints(reviews, 80)[0].Labels["version"]; got != "v9" {
		t.Errorf("reviews-1's endpoint has version %q after the Pod's label change", got)
	}
	if got := dump(next); got != dump(Build(after, BuildOptions{})) {
		t.Errorf("derived registry differs from Build")
	}
}

// TestPodLocality: the Pod's locality label wins over its Node's labels;
// a Node's GA topology labels over the deprecated ones.
func TestPodLocality(t *testing.T) {
	node := func(labels map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels}}
	}
	ki := &kubeIndex{nodes: map[string]*corev1.Node{
		"ga":   node(map[string]string{config.LabelRegion: "eu", config.LabelZone: "eu-1", config.LabelSubzone: "r7"}),
		"old":  node(map[string]string{corev1.LabelFailureDomainBetaRegion: "us", corev1.LabelFailureDomainBetaZone: "us-2"}),
		"both": node(map[string]string{config.LabelRegion: "eu", corev1.LabelFailureDomainBetaRegion: "us"}),
		"none": node(nil),
	}}
	pod := func(node string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{NodeName: node}}
	}
	cases := []struct {
		pod  *corev1.Pod
		want string
	}{
		{pod("ga", nil), "eu/eu-1/r7"},
		{pod("old", nil), "us/us-2/"},
		{pod("both", nil), "eu//"},
		{pod("none", nil), ""},
		{pod("missing", nil), ""},
		{pod("", nil), ""},
		{pod("ga", map[string]string{"istio-locality": "ap.ap-1.x"}), "ap/ap-1/x"},
		{pod("ga", map[string]string{"topology.istio.io/locality": "ap/ap-2", "istio-locality": "x"}), "ap/ap-2"},
	}
	for _, c := range cases {
		if got := ki.podLocality(c.pod); got != c.want {
			t.Errorf("node %q labels %v: locality %q, want %q", c.pod.Spec.NodeName, c.pod.Labels, got, c.want)
		}
	}
}

// TestServiceExportToAnnotation: the annotation's list, "." as the
// Service's namespace, "~" as no one.
func TestServiceExportToAnnotation(t *testing.T) {
	for a, want := range map[string]map[string]bool{
		".":        {"shop": true, "other": false},
		"~":        {"shop": false, "other": false},
		"*":        {"shop": true, "other": true},
		"., other": {"shop": true, "other": true, "third": false},
	} {
		r := build(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop, annotations: {networking.istio.io/exportTo: \""+a+"\"}}\nspec: {ports: [{port: 80}]}")
		svc := service(t, r, "s.shop.svc.cluster.local", "shop")
		for ns, visible := range want {
			if svc.VisibleTo(ns) != visible {
				t.Errorf("exportTo %q: visible to %s = %v, want %v", a, ns, !visible, visible)
			}
		}
	}
}

func TestServiceDualStackVIPs(t *testing.T) {
	r := build(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop}\nspec: {clusterIP: 10.0.0.1, clusterIPs: [10.0.0.1, \"fd00::1\"], ports: [{port: 80}]}")
	if got := service(t, r, "s.shop.svc.cluster.local", "shop").Addresses; len(got) != 2 || got[1] != "fd00::1" {
		t.Errorf("addresses %v, want both families' VIPs", got)
	}
}

// TestKubeTwoServicePortsOneTargetPort: two Service ports onto one
// container port each get the endpoint (Istio dedups by address and
// service port, not target port); a repeat in a later slice does not.
func TestKubeTwoServicePortsOneTargetPort(t *testing.T) {
	r := build(t, `apiVersion: v1
kind: Service
metadata: {name: s, namespace: shop}
spec: {ports: [{name: http, port: 80}, {name: http-alt, port: 8081}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s-1, namespace: shop, labels: {kubernetes.io/service-name: s}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
ports: [{name: http, port: 8080}, {name: http-alt, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s-2, namespace: shop, labels: {kubernetes.io/service-name: s}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
ports: [{name: http, port: 9999}]
`)
	svc := service(t, r, "s.shop.svc.cluster.local", "shop")
	if got := endpoints(r, svc, 80) + " | " + endpoints(r, svc, 8081); got != "10.0.0.1:8080(shop/s-1) | 10.0.0.1:8080(shop/s-1)" {
		t.Errorf("endpoints = %s", got)
	}
}
