package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestIngressGatewayOptionalMutual: an Istio Gateway server with
// OPTIONAL_MUTUAL, subjectAltNames and the credential Secret's ca.crl,
// served by a real router proxy: clients without a certificate and with a
// good one are served; a revoked certificate, one whose SAN is not listed
// and one from another CA are refused at the handshake.
func TestIngressGatewayOptionalMutual(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	service(t, m, "httpbin", map[string]int{"http": 8000})
	ca := testenv.NewCA(t, "gateway-ca")
	serverCert, serverKey := ca.Issue(t, "httpbin.example.com")
	clientCA := testenv.NewCA(t, "client-ca")
	goodCert, goodKey := clientCA.Issue(t, "good.client")
	revokedCert, revokedKey := clientCA.Issue(t, "revoked.client")
	otherCert, otherKey := clientCA.Issue(t, "other.client")
	m.WriteConfig("secret.yaml", testenv.MustYAML(map[string]any{"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
		"metadata": map[string]any{"name": "optional-credential", "namespace": "istio-system"},
		"stringData": map[string]any{"tls.crt": string(serverCert), "tls.key": string(serverKey),
			"ca.crt": string(clientCA.CertPEM), "ca.crl": string(clientCA.CRL(t, revokedCert))}}))
	port := testenv.FreePort()
	m.WriteConfig("gateway.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %d, name: https, protocol: HTTPS}
    hosts: [httpbin.example.com]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: optional-credential, subjectAltNames: [good.client, revoked.client]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.example.com]
  gateways: [ingress]
  http: [{route: [{destination: {host: httpbin, port: {number: 8000}}}]}]
`, port))
	gw := m.AddGateway(testenv.GatewayOptions{Name: "ingressgateway", Labels: map[string]string{"istio": "ingressgateway"}})
	send := func(certs ...tls.Certificate) (*testenv.Response, error) {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{ServerName: "httpbin.example.com", RootCAs: ca.Pool, Certificates: certs}}}
		req, err := http.NewRequest("GET", "https://"+gw.Address(port)+"/status/200", nil)
		if err != nil {
			return nil, err
		}
		req.Host = "httpbin.example.com"
		return testenv.Send(hc, req)
	}
	pair := func(c, k []byte) tls.Certificate {
		p, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	m.WaitConverged(func() error {
		r, err := send()
		if err != nil {
			return err
		}
		return servedBy(r, "httpbin", "")
	}, convergeTimeout)
	if r, err := send(pair(goodCert, goodKey)); err != nil || servedBy(r, "httpbin", "") != nil {
		t.Errorf("a good client certificate: %v %v", r, err)
	}
	for name, cert := range map[string]tls.Certificate{
		"revoked by the Secret's ca.crl": pair(revokedCert, revokedKey),
		"SAN not in subjectAltNames":     pair(otherCert, otherKey),
		"from another CA":                testenv.NewCA(t, "untrusted").ClientCert(t, "good.client"),
	} {
		if r, err := send(cert); err == nil {
			t.Errorf("%s: served (%v), want the handshake refused", name, r)
		}
	}
	requireSyncedNoNACK(t, m)
}
