package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestPathNormalizationE2E: through a real client sidecar and server
// sidecar, "/public/../admin" is routed as "/admin" (not by the /public
// prefix route) and the app receives "/admin", as with Istio's default
// meshConfig.pathNormalization (BASE).
func TestPathNormalizationE2E(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	service(t, m, "admin", map[string]int{"http": 8080})
	service(t, m, "public", map[string]int{"http": 8080})
	m.WriteConfig("vs.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: site, namespace: default}
spec:
  hosts: [admin]
  http:
  - match: [{uri: {prefix: /public}}]
    route: [{destination: {host: public}}]
  - route: [{destination: {host: admin}}]
`)
	c := m.AddClient(testenv.ClientOptions{})
	m.WaitConverged(func() error {
		r, err := c.Get("admin:8080", "/public/x", nil)
		if err != nil {
			return err
		}
		return servedBy(r, "public", "")
	}, convergeTimeout)
	for _, p := range []string{"/public/../admin", "/public/%2E%2E/admin", "/public/./../admin"} {
		r := get(t, c, "admin:8080", p, nil)
		if err := servedBy(r, "admin", ""); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if r.Echo.Request.Path != "/admin" {
			t.Errorf("%s: the app received %q, want /admin", p, r.Echo.Request.Path)
		}
	}
	requireSyncedNoNACK(t, m)
}

// TestWebsocketE2E: a real RFC 6455 websocket through client sidecar ->
// server sidecar -> app, and through an ingress gateway -> server
// sidecar -> app: 101 and frames both ways. An upgrade Istio does not
// allow is refused 403 by the first proxy.
func TestWebsocketE2E(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	app := &http.Server{Handler: testenv.WebsocketEcho("ws ")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })
	m.WriteConfig("service-ws.yaml", testenv.ServiceYAML("ws", "default", map[string]string{"app": "ws"}, map[string]int{"http": 8080}))
	m.AddWorkload(testenv.WorkloadOptions{Service: "ws", AppAddress: ln.Addr().String()})
	gwPort := testenv.FreePort()
	m.WriteConfig("gateway.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %d, name: http, protocol: HTTP}
    hosts: [ws.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ws, namespace: default}
spec:
  hosts: [ws.example.com]
  gateways: [ingress]
  http:
  - route: [{destination: {host: ws, port: {number: 8080}}}]
`, gwPort))
	c := m.AddClient(testenv.ClientOptions{})
	gw := m.AddGateway(testenv.GatewayOptions{Name: "ingressgateway", Labels: map[string]string{"istio": "ingressgateway"}})
	exchange := func(via, addr, host string) func() error {
		return func() error {
			conn, resp, err := testenv.DialWebsocket(addr, host, "/chat")
			if err != nil {
				return err
			}
			if conn == nil {
				return fmt.Errorf("%s: handshake answered %d %v", via, resp.StatusCode, resp.Header)
			}
			defer conn.Close()
			for _, msg := range []string{"hello", strings.Repeat("y", 100_000)} {
				got, err := conn.Send(msg)
				if err != nil {
					return fmt.Errorf("%s: %w", via, err)
				}
				if got != "ws /chat: "+msg {
					return fmt.Errorf("%s: echo %.80q", via, got)
				}
			}
			return nil
		}
	}
	m.WaitConverged(exchange("sidecars", c.OutboundAddress, "ws:8080"), convergeTimeout)
	m.WaitConverged(exchange("gateway", gw.Address(gwPort), "ws.example.com"), convergeTimeout)

	r, err := c.Get("ws:8080", "/chat", map[string]string{"Connection": "Upgrade", "Upgrade": "spdy/3"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusForbidden {
		t.Errorf("an upgrade not in upgrade_configs: %s, want 403", r)
	}
	requireSyncedNoNACK(t, m)
}
