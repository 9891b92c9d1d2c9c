package config

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// problems decodes one document and returns its decode, validation and
// support-table errors, as the file source reports them.
func problems(t *testing.T, yaml string) (*Resource, string) {
	t.Helper()
	res := DecodeObjectResult([]byte(yaml), Source{File: "kube.yaml", Doc: 1}, DecodeOptions{})
	var out []string
	for _, e := range res.Errors {
		out = append(out, e.Error())
	}
	var r *Resource
	if len(res.Resources) == 1 {
		r = res.Resources[0]
		for _, e := range append(Validate(r), Unsupported(r)...) {
			out = append(out, e.Error())
		}
	}
	return r, strings.Join(out, "\n")
}

func TestDecodeKubeKinds(t *testing.T) {
	r, errs := problems(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"shop","labels":{"app":"a"}},
"spec":{"serviceAccountName":"sa","nodeName":"n","containers":[{"name":"c","image":"x"}]},"status":{"phase":"Running","podIP":"10.0.0.1"}}`)
	if errs != "" || r.Kind != KindPod || r.Namespace != "shop" || r.Spec.(*corev1.Pod).Spec.ServiceAccountName != "sa" ||
		r.Spec.(*corev1.Pod).Status.PodIP != "10.0.0.1" || r.Labels["app"] != "a" {
		t.Errorf("Pod JSON: %+v %s", r, errs)
	}
	r, errs = problems(t, "apiVersion: v1\nkind: Node\nmetadata: {name: n1, namespace: x, labels: {topology.kubernetes.io/zone: z}}\nstatus: {addresses: [{type: InternalIP, address: 10.0.0.1}]}")
	if errs != "" || r.Kind != KindNode || r.Namespace != "" || r.Spec.(*corev1.Node).Labels[LabelZone] != "z" {
		t.Errorf("Node: %+v %s", r, errs)
	}
	r, errs = problems(t, `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s, namespace: shop, labels: {kubernetes.io/service-name: svc}}
addressType: IPv6
endpoints: [{addresses: ["fd00::1"], conditions: {ready: true}}]
ports: [{name: http, port: 80}]`)
	if errs != "" || r.Kind != KindEndpointSlice || r.Spec.(*discoveryv1.EndpointSlice).Endpoints[0].Addresses[0] != "fd00::1" {
		t.Errorf("EndpointSlice: %+v %s", r, errs)
	}
}

// TestKubeKindErrors: each bad object is refused with an error naming the
// file, the object and the field.
func TestKubeKindErrors(t *testing.T) {
	const slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s, namespace: shop, labels: {kubernetes.io/service-name: svc}}\n"
	cases := []struct{ yaml, want string }{
		{slice + "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], bogus: 1}]",
			`kube.yaml (document 1): EndpointSlice shop/s: endpoints[0].bogus: unknown field`},
		{slice + "addressType: IPv4\nendpoints: [{addresses: [\"fd00::1\"]}]",
			`kube.yaml (document 1): EndpointSlice shop/s: endpoints[0].addresses[0]: "fd00::1" is not an IPv4 address`},
		{slice + "addressType: FQDN\nendpoints: [{addresses: [a.example.com]}]",
			`kube.yaml (document 1): EndpointSlice shop/s: addressType: FQDN slices are not supported`},
		{slice + "addressType: IPv5", `EndpointSlice shop/s: addressType: "IPv5": use IPv4 or IPv6`},
		{slice + "addressType: IPv4\nendpoints: [{addresses: []}]", `EndpointSlice shop/s: endpoints[0].addresses: required`},
		{slice + "addressType: IPv4\nports: [{name: a, port: 0}, {name: a, port: 1}]", `EndpointSlice shop/s: ports[0].port: 0 is not a port number`},
		{slice + "addressType: IPv4\nports: [{name: a, port: 1}, {name: a, port: 2}]", `EndpointSlice shop/s: ports[1].name: "a" repeats`},
		{slice + "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], targetRef: {kind: Pod, name: p, namespace: other}}]",
			`EndpointSlice shop/s: endpoints[0].targetRef.namespace: "other"`},
		{"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4",
			`EndpointSlice default/s: metadata.labels: missing label kubernetes.io/service-name`},
		{"apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4",
			`EndpointSlice default/s: apiVersion: "discovery.k8s.io/v1beta1": sluice reads EndpointSlices of discovery.k8s.io/v1`},
		{"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, ports: [{containerPort: 70000}]}]}",
			`Pod default/p: spec.containers[0].ports[0].containerPort: 70000 is not a port number`},
		{"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: 7}", `Pod default/p: spec.nodeName`},
		{"apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {bogus: true}", `Node /n1: spec.bogus: unknown field`},
	}
	for _, c := range cases {
		if _, errs := problems(t, c.yaml); !strings.Contains(errs, c.want) {
			t.Errorf("%s\n got: %s\nwant: %s", c.yaml, errs, c.want)
		}
	}
}

func TestInRevision(t *testing.T) {
	res := func(kind Kind, labels map[string]string) *Resource {
		return &Resource{Kind: kind, Meta: Meta{Name: "x", Labels: labels}}
	}
	canary := map[string]string{LabelRevision: "canary"}
	cases := []struct {
		r    *Resource
		rev  string
		want bool
	}{
		{res(KindVirtualService, nil), "canary", true},
		{res(KindVirtualService, canary), "canary", true},
		{res(KindVirtualService, canary), "stable", false},
		{res(KindVirtualService, canary), "", true},
		{res(KindHTTPRoute, map[string]string{LabelRevision: ""}), "canary", false},
		{res(KindService, canary), "stable", true},
		{res(KindEndpointSlice, canary), "stable", true},
		{res(KindNamespace, canary), "stable", true},
	}
	for _, c := range cases {
		if got := InRevision(c.r, c.rev); got != c.want {
			t.Errorf("InRevision(%s %v, %q) = %v, want %v", c.r.Kind, c.r.Labels, c.rev, got, c.want)
		}
	}
}

// TestDecodeObject: the one-object entry point gives the resource, an
// error naming source, object and field, or nothing for a kind sluice
// does not read.
func TestDecodeObject(t *testing.T) {
	src := Source{File: "kubernetes"}
	r, err := DecodeObject([]byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"a","namespace":"b"},"spec":{"ports":[{"port":80}]}}`), src, DecodeOptions{})
	if err != nil || r == nil || r.Key() != (Key{Kind: KindService, Namespace: "b", Name: "a"}) || r.Source != src {
		t.Errorf("Service: %+v %v", r, err)
	}
	_, err = DecodeObject([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"b"},"spec":{"bogus":1}}`), src, DecodeOptions{})
	if err == nil || err.Error() != "kubernetes: Pod b/p: spec.bogus: unknown field" {
		t.Errorf("bad Pod: %v", err)
	}
	if r, err := DecodeObject([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`), src, DecodeOptions{}); r != nil || err != nil {
		t.Errorf("ConfigMap: %+v %v", r, err)
	}
}

func TestServiceExportToAnnotation(t *testing.T) {
	svc := func(a string) string {
		return "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop, annotations: {networking.istio.io/exportTo: \"" + a + "\"}}\nspec: {ports: [{port: 80}]}"
	}
	for _, ok := range []string{".", "*", "~", "., other", "shop,other"} {
		if _, errs := problems(t, svc(ok)); errs != "" {
			t.Errorf("exportTo %q: %s", ok, errs)
		}
	}
	for a, want := range map[string]string{
		"Bad_NS":  `metadata.annotations[networking.istio.io/exportTo][0]: invalid entry "Bad_NS"`,
		"*, a":    `cannot have both public`,
		"~, a":    `cannot export to no one`,
		"., shop": `duplicate entry`,
	} {
		if _, errs := problems(t, svc(a)); !strings.Contains(errs, want) {
			t.Errorf("exportTo %q: got %q, want %q", a, errs, want)
		}
	}
}

func TestServiceInternalTrafficPolicyLocal(t *testing.T) {
	const svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop}\nspec: {internalTrafficPolicy: %s, ports: [{port: 80}]}"
	if _, errs := problems(t, strings.Replace(svc, "%s", "Local", 1)); !strings.Contains(errs, "Service shop/s: spec.internalTrafficPolicy: Local") {
		t.Errorf("Local: %q", errs)
	}
	if _, errs := problems(t, strings.Replace(svc, "%s", "Cluster", 1)); errs != "" {
		t.Errorf("Cluster: %q", errs)
	}
}

func TestServiceClusterIPs(t *testing.T) {
	const svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop}\nspec: {clusterIP: 10.0.0.1, clusterIPs: %s, ports: [{port: 80}]}"
	for ips, want := range map[string]string{
		`[10.0.0.1, "fd00::1"]`: "",
		`[10.0.0.2]`:            `spec.clusterIPs[0]: "10.0.0.2" must equal spec.clusterIP`,
		`[10.0.0.1, bogus]`:     `spec.clusterIPs[1]`,
	} {
		_, errs := problems(t, strings.Replace(svc, "%s", ips, 1))
		if (want == "" && errs != "") || !strings.Contains(errs, want) {
			t.Errorf("clusterIPs %s: %q, want %q", ips, errs, want)
		}
	}
}

func TestServiceTrafficDistributionRejected(t *testing.T) {
	_, errs := problems(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop}\nspec: {trafficDistribution: PreferClose, ports: [{port: 80}]}")
	if !strings.Contains(errs, "Service shop/s: spec.trafficDistribution: traffic distribution") {
		t.Errorf("got %q", errs)
	}
}
