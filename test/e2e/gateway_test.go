package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestIngressGateway drives an Istio Gateway served by a router proxy: plain
// HTTP, httpsRedirect, TLS termination chosen by SNI with a certificate
// from a credentialName Secret, and mutual TLS, all with real TLS clients.
func TestIngressGateway(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	service(t, m, "httpbin", map[string]int{"http": 8000})
	ca := NewTestCA(t)
	serverCert, serverKey := ca.Issue(t, "httpbin.example.com", "secure.example.com")
	clientCA := testenv.NewCA(t, "client-ca")
	m.WriteConfig("secrets.yaml", testenv.TLSSecretYAML("httpbin-credential", "istio-system", serverCert, serverKey, nil)+
		"---\n"+testenv.TLSSecretYAML("mtls-credential", "istio-system", serverCert, serverKey, clientCA.CertPEM))

	httpPort, httpsPort, mtlsPort := testenv.FreePort(), testenv.FreePort(), testenv.FreePort()
	m.WriteConfig("gateway.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %[1]d, name: http, protocol: HTTP}
    hosts: [httpbin.example.com]
  - port: {number: %[1]d, name: http-redirect, protocol: HTTP}
    hosts: [secure.example.com]
    tls: {httpsRedirect: true}
  - port: {number: %[2]d, name: https, protocol: HTTPS}
    hosts: [httpbin.example.com, secure.example.com]
    tls: {mode: SIMPLE, credentialName: httpbin-credential}
  - port: {number: %[3]d, name: https-mtls, protocol: HTTPS}
    hosts: [httpbin.example.com]
    tls: {mode: MUTUAL, credentialName: mtls-credential}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.example.com, secure.example.com]
  gateways: [ingress]
  http:
  - match: [{uri: {prefix: /status}}, {uri: {prefix: /headers}}]
    headers: {response: {set: {x-gateway-route: httpbin}}}
    route: [{destination: {host: httpbin, port: {number: 8000}}}]
`, httpPort, httpsPort, mtlsPort))
	gw := m.AddGateway(testenv.GatewayOptions{Name: "ingressgateway", Labels: map[string]string{"istio": "ingressgateway"}})

	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(hc *http.Client, scheme string, port int, host, path string) (*testenv.Response, error) {
		req, err := http.NewRequest("GET", scheme+"://"+gw.Address(port)+path, nil)
		if err != nil {
			return nil, err
		}
		req.Host = host
		return testenv.Send(hc, req)
	}
	tlsClient := func(serverName string, certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{ServerName: serverName, RootCAs: ca.Pool, Certificates: certs},
		}}
	}

	t.Run("plain HTTP routed by host and path", func(t *testing.T) {
		m.WaitConverged(func() error {
			r, err := send(plain, "http", httpPort, "httpbin.example.com", "/status/200")
			if err != nil {
				return err
			}
			if err := servedBy(r, "httpbin", ""); err != nil {
				return err
			}
			if r.Header.Get("X-Gateway-Route") != "httpbin" {
				return fmt.Errorf("route response header missing: %s", r)
			}
			return nil
		}, convergeTimeout)
		r, err := send(plain, "http", httpPort, "httpbin.example.com", "/other")
		if err != nil || r.Status != 404 {
			t.Errorf("no route must be 404: %v %v", r, err)
		}
		r, err = send(plain, "http", httpPort, "unknown.example.com", "/status/200")
		if err != nil || r.Status != 404 {
			t.Errorf("a host no server admits must be 404: %v %v", r, err)
		}
	})

	t.Run("httpsRedirect", func(t *testing.T) {
		r, err := send(plain, "http", httpPort, "secure.example.com", "/status/200?x=1")
		if err != nil {
			t.Fatal(err)
		}
		loc := r.Header.Get("Location")
		if r.Status != 301 || !strings.HasPrefix(loc, "https://secure.example.com") || !strings.HasSuffix(loc, "/status/200?x=1") {
			t.Errorf("want 301 to https://secure.example.com...: %d %q", r.Status, loc)
		}
	})

	t.Run("TLS termination by SNI", func(t *testing.T) {
		for _, sni := range []string{"httpbin.example.com", "secure.example.com"} {
			r, err := send(tlsClient(sni), "https", httpsPort, sni, "/headers")
			if err != nil {
				t.Fatalf("SNI %s: %v", sni, err)
			}
			if err := servedBy(r, "httpbin", ""); err != nil {
				t.Errorf("SNI %s: %v", sni, err)
			}
			if got := r.Echo.Request.Headers["X-Forwarded-Proto"]; len(got) == 0 || got[0] != "https" {
				t.Errorf("SNI %s: backend saw X-Forwarded-Proto %v, want https", sni, got)
			}
		}
		if _, err := send(tlsClient("other.example.com"), "https", httpsPort, "other.example.com", "/headers"); err == nil {
			t.Error("a server name no chain takes must fail the handshake")
		}
	})

	t.Run("mutual TLS", func(t *testing.T) {
		if _, err := send(tlsClient("httpbin.example.com"), "https", mtlsPort, "httpbin.example.com", "/status/200"); err == nil {
			t.Error("MUTUAL must refuse a client without a certificate")
		}
		wrongCA := testenv.NewCA(t, "untrusted").ClientCert(t, "client")
		if _, err := send(tlsClient("httpbin.example.com", wrongCA), "https", mtlsPort, "httpbin.example.com", "/status/200"); err == nil {
			t.Error("MUTUAL must refuse a certificate from another CA")
		}
		r, err := send(tlsClient("httpbin.example.com", clientCA.ClientCert(t, "client")), "https", mtlsPort, "httpbin.example.com", "/status/200")
		if err != nil {
			t.Fatal(err)
		}
		if err := servedBy(r, "httpbin", ""); err != nil {
			t.Error(err)
		}
	})
	t.Run("a conflicting server is left out and reported", func(t *testing.T) {
		m.WriteConfig("gateway-conflict.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: clash, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %d, name: tcp-on-http-port, protocol: TCP}
    hosts: ["*"]
`, httpPort))
		m.WaitConverged(func() error {
			for id, list := range m.Status().Conflicts {
				for _, c := range list {
					if strings.Contains(c, "default/clash") && strings.Contains(c, "conflicts with HTTP") {
						return nil
					}
				}
				_ = id
			}
			return fmt.Errorf("no conflict reported in /debug/status: %v", m.Status().Conflicts)
		}, convergeTimeout)
		// The first server on the port keeps serving.
		r, err := send(plain, "http", httpPort, "httpbin.example.com", "/status/200")
		if err != nil || r.Status != 200 {
			t.Errorf("the HTTP server must keep serving: %v %v", r, err)
		}
		m.RemoveConfig("gateway-conflict.yaml")
	})
	requireSyncedNoNACK(t, m)
}

// TestGatewayPortOffset serves Gateway port 80 on 80+offset, as a user
// without root does locally.
// webGatewayYAML is a Gateway on port 80 for the router labelled
// app=web-gateway, routing every host to the web service.
const webGatewayYAML = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {app: web-gateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: ["*"]
  gateways: [web]
  http:
  - route: [{destination: {host: web}}]
`

func TestGatewayPortOffset(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	service(t, m, "web", map[string]int{"http": 80})
	m.WriteConfig("gateway.yaml", webGatewayYAML)
	offset := testenv.FreePort() - 80
	gw := m.AddGateway(testenv.GatewayOptions{Name: "web-gateway", Namespace: "default", Labels: map[string]string{"app": "web-gateway"}, PortOffset: offset})
	hc := &http.Client{Timeout: 5 * time.Second}
	m.WaitConverged(func() error {
		req, _ := http.NewRequest("GET", "http://"+gw.Address(80)+"/", nil)
		r, err := testenv.Send(hc, req)
		if err != nil {
			return err
		}
		return servedBy(r, "web", "")
	}, convergeTimeout)
}

// NewTestCA is the CA the gateway tests trust for server certificates.
func NewTestCA(t *testing.T) *testenv.CA { return testenv.NewCA(t, "server-ca") }
