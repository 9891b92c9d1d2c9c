package dashboard_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// Hosts of the test mesh.
const (
	productHost = "product-service.default.svc.cluster.local"
	reviewsHost = "reviews.default.svc.cluster.local"
	ratingsHost = "ratings.default.svc.cluster.local"
)

// testMesh is a demo-like mesh: product-service v1/v2 (a 90/10 canary)
// and reviews behind auto mTLS, ratings plaintext (no tlsMode label),
// asked to answer 30 ms late (echo's ?delay); /fail on product-service and reviews is
// answered 503 by the client's sidecar (a fault abort).
type testMesh struct {
	*testenv.Mesh
	client               *testenv.Client
	v1, v2, rev, ratings *testenv.Workload
}

func newTestMesh(t *testing.T, controlArgs ...string) *testMesh {
	t.Helper()
	m := testenv.NewMesh(t, testenv.MeshOptions{ControlArgs: controlArgs})
	svc := func(name string) string {
		return testenv.ServiceYAML(name, "default", map[string]string{"app": name}, map[string]int{"http": 9080}) + "---\n"
	}
	m.WriteConfig("services.yaml", svc("product-service")+svc("reviews")+svc("ratings")+`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: product-service, namespace: default}
spec:
  host: product-service
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: product-service, namespace: default}
spec:
  hosts: [product-service]
  http:
  - match: [{uri: {prefix: /fail}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: product-service, subset: v1}}]
  - route:
    - {destination: {host: product-service, subset: v1}, weight: 90}
    - {destination: {host: product-service, subset: v2}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /fail}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - route: [{destination: {host: ratings}}]
`)
	tm := &testMesh{Mesh: m}
	tm.v1 = m.AddWorkload(testenv.WorkloadOptions{Service: "product-service", Version: "v1"})
	tm.v2 = m.AddWorkload(testenv.WorkloadOptions{Service: "product-service", Version: "v2"})
	tm.rev = m.AddWorkload(testenv.WorkloadOptions{Service: "reviews", Version: "v1"})
	tm.ratings = m.AddWorkload(testenv.WorkloadOptions{Service: "ratings", Version: "v1", NoTLSModeLabel: true})
	tm.client = m.AddClient(testenv.ClientOptions{Name: "demo-client"})
	// Every proxy has ACKed the last push before the first request: one
	// sent earlier can meet a service whose WorkloadEntry has not reached
	// the client yet (503 UH), and would count in the dashboard's window.
	m.WaitSynced(30 * time.Second)
	for _, svc := range []string{"product-service", "reviews", "ratings"} {
		m.WaitConverged(func() error {
			r, err := tm.client.Get(svc+":9080", "/", nil)
			if err != nil {
				return err
			}
			if r.Status != 200 || !r.Served() {
				return fmt.Errorf("%s: %v", svc, r)
			}
			return nil
		}, 30*time.Second)
	}
	return tm
}

// admins are the scrape targets of every proxy of the mesh.
func (tm *testMesh) admins() []struct{ id, admin string } {
	return []struct{ id, admin string }{{"client", tm.client.AdminAddress}, {"v1", tm.v1.AdminAddress},
		{"v2", tm.v2.AdminAddress}, {"reviews", tm.rev.AdminAddress}, {"ratings", tm.ratings.AdminAddress}}
}

// send sends n requests for host+path and fails the test on a transport
// error or a status other than want.
func (tm *testMesh) send(t *testing.T, host, path string, n, want int) {
	t.Helper()
	for i := 0; i < n; i++ {
		r, err := tm.client.Get(host, path, nil)
		if err != nil {
			t.Fatalf("%s%s: %v", host, path, err)
		}
		if r.Status != want {
			t.Fatalf("%s%s: want %d, got %v", host, path, want, r)
		}
	}
}

// standardTraffic is the load the rate tests count: product-service 98
// OK and 2 aborted (2%: degraded), reviews 10 OK and 10 aborted (50%:
// failure), ratings 20 OK 30 ms late (healthy, plaintext).
func (tm *testMesh) standardTraffic(t *testing.T) {
	t.Helper()
	tm.send(t, "product-service:9080", "/", 98, 200)
	tm.send(t, "product-service:9080", "/fail", 2, 503)
	tm.send(t, "reviews:9080", "/", 10, 200)
	tm.send(t, "reviews:9080", "/fail", 10, 503)
	tm.send(t, "ratings:9080", "/?delay=30ms", 20, 200)
}
