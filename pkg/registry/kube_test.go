package registry

import (
	"fmt"
	"os"
	"strings"
	"testing"
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
		"10.1.0.2:9080 sa=default loc=us labels=app=reviews,version=v2 w=shop/reviews-2",
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
