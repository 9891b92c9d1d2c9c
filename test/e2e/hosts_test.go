package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestShortHostForms: every way an app in namespace default can name the
// reviews service reaches it: short name, with port, name.namespace, the
// FQDN, and an absolute-form request line (HTTP proxy style).
func TestShortHostForms(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	service(t, m, "reviews", map[string]int{"http": 9080}, "v1")
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	m.WaitReady()
	m.WaitConverged(func() error { return allServedBy(c, 1, "reviews:9080", "/", nil, "reviews", "v1") }, convergeTimeout)

	for _, host := range []string{
		"reviews",
		"reviews:9080",
		"reviews.default",
		"reviews.default:9080",
		"reviews.default.svc",
		"reviews.default.svc:9080",
		"reviews.default.svc.cluster.local",
		"reviews.default.svc.cluster.local:9080",
	} {
		t.Run("host="+host, func(t *testing.T) {
			r := get(t, c, host, "/x", nil)
			if err := servedBy(r, "reviews", "v1"); err != nil {
				t.Fatalf("Host %q: %v", host, err)
			}
			if r.Echo.Request.Path != "/x" {
				t.Errorf("Host %q: backend saw path %q, want /x", host, r.Echo.Request.Path)
			}
		})
	}

	t.Run("absolute-form via http.Transport proxy", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://reviews:9080/x?q=1", nil)
		r, err := testenv.Send(c.ProxyHTTP(), req)
		if err != nil {
			t.Fatal(err)
		}
		if err := servedBy(r, "reviews", "v1"); err != nil {
			t.Fatal(err)
		}
		if r.Echo.Request.Path != "/x?q=1" {
			t.Errorf("backend saw path %q, want /x?q=1", r.Echo.Request.Path)
		}
	})

	t.Run("absolute-form raw request line", func(t *testing.T) {
		// No Host header disagreeing with the URI: the request line names
		// the destination, as a client configured with HTTP_PROXY sends it.
		conn, err := net.DialTimeout("tcp", c.OutboundAddress, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET http://reviews:9080/x HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body := make([]byte, 0, 4096)
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			body = append(body, buf[:n]...)
			if err != nil {
				break
			}
		}
		r := &testenv.Response{Status: resp.StatusCode, Header: resp.Header, Body: body, Echo: testenv.DecodeEcho(body)}
		if err := servedBy(r, "reviews", "v1"); err != nil {
			t.Fatal(err)
		}
		if r.Echo.Request.Path != "/x" {
			t.Errorf("backend saw path %q, want /x", r.Echo.Request.Path)
		}
	})
	requireSyncedNoNACK(t, m)
}

// TestH2C: a client speaking HTTP/2 with prior knowledge to the sidecar's
// outbound listener is routed like HTTP/1.1.
func TestH2C(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	service(t, m, "reviews", map[string]int{"http": 9080}, "v1", "v2")
	m.WriteConfig("vs.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
`)
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	m.WaitReady()
	h2 := c.H2C()
	m.WaitConverged(func() error {
		return allServedBy(h2, 10, "reviews:9080", "/", map[string]string{"end-user": "jason"}, "reviews", "v2")
	}, convergeTimeout)
	for _, tc := range []struct {
		user, version string
	}{{"jason", "v2"}, {"", "v1"}} {
		h := map[string]string{}
		if tc.user != "" {
			h["end-user"] = tc.user
		}
		r := get(t, h2, "reviews:9080", "/h2", h)
		if err := servedBy(r, "reviews", tc.version); err != nil {
			t.Errorf("h2c end-user=%q: %v", tc.user, err)
			continue
		}
		if r.Proto != "HTTP/2.0" {
			t.Errorf("h2c end-user=%q: response protocol %q, want HTTP/2.0", tc.user, r.Proto)
		}
	}
	requireSyncedNoNACK(t, m)
}
