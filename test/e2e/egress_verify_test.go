package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestEgressTLSOriginationCRL: a DestinationRule's caCrl on TLS
// origination. With a CRL that revokes nothing the external host is
// reached; once the CRL revokes its certificate the sidecar refuses the
// handshake (503 naming the revocation) instead of sending anything.
func TestEgressTLSOriginationCRL(t *testing.T) {
	const name = "secure.example.com"
	ca := testenv.NewCA(t, "external-ca")
	certPEM, keyPEM := ca.Issue(t, name)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "external %s tls=%t sni=%s host=%s path=%s", name, r.TLS != nil, r.TLS.ServerName, r.Host, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	dir := t.TempDir()
	files := map[string][]byte{"hosts": []byte("127.0.0.1 " + name + "\n"), "ca.pem": ca.CertPEM,
		"none.crl": ca.CRL(t), "revoked.crl": ca.CRL(t, certPEM)}
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := testenv.NewMesh(t, testenv.MeshOptions{ProxyArgs: []string{"--hosts-file", filepath.Join(dir, "hosts")}})
	rule := func(crl string) string {
		return externalServiceEntry(name, port) + fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: secure, namespace: default}
spec:
  host: %s
  trafficPolicy:
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: SIMPLE, caCertificates: %s, caCrl: %s}
`, name, filepath.Join(dir, "ca.pem"), filepath.Join(dir, crl))
	}
	m.WriteConfig("egress.yaml", rule("none.crl"))
	c := m.AddClient(testenv.ClientOptions{Name: "app"})
	waitReachesExternal(m, c, name)
	m.WriteConfig("egress.yaml", rule("revoked.crl"))
	waitRefused(m, c, name, "revoked")
	if r, err := c.Get(name, "/get", nil); err != nil || strings.Contains(string(r.Body), "external") {
		t.Errorf("a revoked server was reached: %v %v", r, err)
	}
	requireSyncedNoNACK(t, m)
}

// TestEgressServiceEntrySubjectAltNames: a ServiceEntry's subjectAltNames
// verify its servers when the DestinationRule names none, as Istio: a
// certificate without the listed name is refused, one with it is
// reached.
func TestEgressServiceEntrySubjectAltNames(t *testing.T) {
	const name = "secure.example.com"
	m, port, caFile := egressMesh(t, name, "")
	withSANs := func(sans string) string {
		se := strings.Replace(externalServiceEntry(name, port), "  location: MESH_EXTERNAL\n",
			"  location: MESH_EXTERNAL\n  subjectAltNames: "+sans+"\n", 1)
		return se + tlsOriginationRule(name, caFile)
	}
	m.WriteConfig("egress.yaml", withSANs("[other.example.com]"))
	c := m.AddClient(testenv.ClientOptions{Name: "app"})
	waitRefused(m, c, name, "other.example.com")
	m.WriteConfig("egress.yaml", withSANs("[other.example.com, "+name+"]"))
	waitReachesExternal(m, c, name)
	requireSyncedNoNACK(t, m)
}
