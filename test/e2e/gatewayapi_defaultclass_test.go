package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
)

// TestGatewayAPIDefaultClass is Istio's Gateway API task as written
// (istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api/): a
// Gateway of class istio and an HTTPRoute to httpbin, with no GatewayClass
// in the folder, served by a real router proxy. istiod creates the class
// itself; sluice must too.
func TestGatewayAPIDefaultClass(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	service(t, m, "httpbin", map[string]int{"http": 8000})
	port := testenv.FreePort()
	m.WriteConfig("gateway.yaml", fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gateway, namespace: istio-ingress}
spec:
  gatewayClassName: istio
  listeners:
  - name: default
    hostname: "*.example.com"
    port: %d
    protocol: HTTP
    allowedRoutes: {namespaces: {from: All}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: http, namespace: default}
spec:
  parentRefs: [{name: gateway, namespace: istio-ingress}]
  hostnames: ["httpbin.example.com"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /get}}]
    backendRefs: [{name: httpbin, port: 8000}]
`, port))
	gw := m.AddGateway(testenv.GatewayOptions{Name: "gateway-istio", Namespace: "istio-ingress",
		Labels: map[string]string{gatewayapi.GatewayNameLabel: "gateway"}})
	hc := &http.Client{Timeout: 5 * time.Second}
	send := func(path, host string) (*testenv.Response, error) {
		req, err := http.NewRequest("GET", "http://"+gw.Address(port)+path, nil)
		if err != nil {
			return nil, err
		}
		req.Host = host
		return testenv.Send(hc, req)
	}
	m.WaitConverged(func() error {
		r, err := send("/get", "httpbin.example.com")
		if err != nil {
			return err
		}
		return servedBy(r, "httpbin", "")
	}, convergeTimeout)
	if r, err := send("/headers", "httpbin.example.com"); err != nil || r.Status != 404 {
		t.Errorf("a path the route does not match: want 404, got %v %v", r, err)
	}
	requireSyncedNoNACK(t, m)
}
