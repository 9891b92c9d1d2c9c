package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/controlplane"
)

// TestPeerAuthentication: with no policy (PERMISSIVE) a mesh client
// reaches a sidecar workload in mTLS, its identity in XFCC, and plaintext
// straight to the sidecar is accepted; under a namespace STRICT policy the
// mesh client still gets through and plaintext is refused at the
// connection. /debug/status counts both kinds of connection.
func TestPeerAuthentication(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("db.yaml", testenv.ServiceYAML("db", "default", map[string]string{"app": "db"}, map[string]int{"http": 8080}))
	w := m.AddWorkload(testenv.WorkloadOptions{Service: "db"})
	c := m.AddClient(testenv.ClientOptions{Name: "client"})

	m.WaitConverged(func() error { return meshCallWithIdentity(c) }, convergeTimeout)
	if r, err := plaintextGet(w.InboundAddress); err != nil || r.StatusCode != 200 || r.Header.Get("X-Echo-Service") != "db" {
		t.Fatalf("PERMISSIVE: plaintext to %s: %v %v", w.InboundAddress, r, err)
	}
	m.WaitConverged(func() error {
		return portCounts(m, w.Name, "PERMISSIVE", func(mtls, plain uint64) bool { return mtls >= 1 && plain >= 1 })
	}, convergeTimeout)

	m.WriteConfig("strict.yaml", `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
`)
	m.WaitConverged(func() error {
		if r, err := plaintextGet(w.InboundAddress); err == nil {
			return fmt.Errorf("STRICT: plaintext still answered %s", r.Status)
		}
		return nil
	}, convergeTimeout)
	if err := meshCallWithIdentity(c); err != nil {
		t.Fatalf("STRICT: mesh client: %v", err)
	}
	// Plaintext sent before STRICT arrived was served; from now on none is.
	var plainBefore uint64
	if err := portCounts(m, w.Name, "STRICT", func(_, plain uint64) bool { plainBefore = plain; return true }); err != nil {
		t.Fatal(err)
	}
	if r, err := plaintextGet(w.InboundAddress); err == nil {
		t.Fatalf("STRICT: plaintext answered %s", r.Status)
	}
	m.WaitConverged(func() error {
		// The client sidecar may keep using its pooled mTLS connection, so
		// the mTLS count need not grow; refused plaintext is never counted
		// as served plaintext.
		return portCounts(m, w.Name, "STRICT", func(mtls, plain uint64) bool { return mtls >= 1 && plain == plainBefore })
	}, convergeTimeout)
	requireSyncedNoNACK(t, m)
}

// meshCallWithIdentity calls db through the client's sidecar and checks the
// app saw the client's SPIFFE ID in XFCC, appended by the server sidecar.
func meshCallWithIdentity(c *testenv.Client) error {
	r, err := c.Get("db:8080", "/", nil)
	if err != nil {
		return err
	}
	if err := servedBy(r, "db", ""); err != nil {
		return err
	}
	xfcc := r.Echo.Request.Headers.Get("X-Forwarded-Client-Cert")
	if !strings.Contains(xfcc, "By=spiffe://cluster.local/ns/default/sa/") || !strings.Contains(xfcc, "URI=spiffe://cluster.local/ns/default/sa/") ||
		!strings.Contains(xfcc, "Hash=") {
		return fmt.Errorf("x-forwarded-client-cert %q lacks By, Hash and the client's URI", xfcc)
	}
	return nil
}

func plaintextGet(addr string) (*http.Response, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return nil, err
	}
	req.Host = "db"
	r, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	r.Body.Close()
	return r, nil
}

// portCounts checks the workload's one inbound port in /debug/status.
func portCounts(m *testenv.Mesh, name, mode string, ok func(mtls, plain uint64) bool) error {
	resp, err := http.Get(m.URL("/debug/status"))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var st controlplane.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return err
	}
	for _, w := range st.MTLS {
		if w.Name != name {
			continue
		}
		if len(w.Ports) != 1 || w.Ports[0].Mode != mode || w.Ports[0].MTLS == nil || w.Ports[0].Plaintext == nil ||
			!ok(*w.Ports[0].MTLS, *w.Ports[0].Plaintext) {
			var got []string
			for _, p := range w.Ports {
				got = append(got, fmt.Sprintf("port %d %s mtls=%s plaintext=%s", p.Port, p.Mode, count(p.MTLS), count(p.Plaintext)))
			}
			return fmt.Errorf("mtls status of %s: %v (stats error %q)", name, got, w.StatsError)
		}
		return nil
	}
	return fmt.Errorf("no mtls status for %s: %+v", name, st.MTLS)
}

func count(n *uint64) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}

// A service port whose protocol is not known (named "web") is sniffed by
// the server's sidecar; the client's sidecar offers Istio's HTTP mesh ALPN
// (istio-http/1.1), so the mTLS connection lands on the HTTP chain: the app
// sees the caller's identity in XFCC, as on a port named http.
func TestAutoMTLSToSniffedPort(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("db.yaml", testenv.ServiceYAML("db", "default", map[string]string{"app": "db"}, map[string]int{"web": 8080}))
	m.AddWorkload(testenv.WorkloadOptions{Service: "db", PortName: "web"})
	c := m.AddClient(testenv.ClientOptions{Name: "client"})
	m.WaitConverged(func() error { return meshCallWithIdentity(c) }, convergeTimeout)
	requireSyncedNoNACK(t, m)
}
