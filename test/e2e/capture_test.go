package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/netnstest"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// captureConfig: three Services with cluster IPs (as an API server
// allocates them), reviews split by a VirtualService, and a TCP service.
const captureConfig = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.96.77.10
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  clusterIP: 10.96.77.11
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: tcp-echo, namespace: default}
spec:
  clusterIP: 10.96.77.12
  selector: {app: tcp-echo}
  ports: [{name: tcp, port: 9000}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {user-group: {exact: beta}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}, weight: 50}
`

// TestCaptureByDestination: an app in a network namespace whose traffic
// `sluice capture` redirects to a sidecar running as uid 1337
// (--interception-mode REDIRECT) connects to Service addresses with no
// Host trick and no proxy setting: HTTP to a cluster IP is routed by the
// VirtualService (header match, weights), by the address connected to
// even when Host names another service; TCP to a cluster IP reaches its
// service; a connection to an address the mesh does not know passes
// through to it; and mesh traffic to the pod's own port is captured on its
// way in and reaches the app.
func TestCaptureByDestination(t *testing.T) {
	netnstest.Require(t, "iptables")
	m := testenv.NewMesh(t, testenv.MeshOptions{XDSListenAll: true})
	m.WriteConfig("capture.yaml", captureConfig)
	for _, v := range []string{"v1", "v2"} {
		m.AddWorkload(testenv.WorkloadOptions{Service: "reviews", Version: v, IP: testenv.PodIP(t)})
	}
	m.AddWorkload(testenv.WorkloadOptions{Service: "ratings", Version: "v1", IP: testenv.PodIP(t)})
	m.AddWorkload(testenv.WorkloadOptions{Service: "tcp-echo", Version: "v1", PortName: "tcp", TCPPrefix: "hello", IP: testenv.PodIP(t)})
	c := m.AddCaptured(testenv.CapturedOptions{Name: "sleep"})
	// The app behind the captured sidecar: an HTTP server on port 8080 of
	// the pod, registered as the endpoint of Service sleep.
	app, err := c.NS.Listen("tcp", "0.0.0.0:8080")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(app, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "sleep app saw %s from %s", r.Host, r.RemoteAddr)
	}))
	t.Cleanup(func() { app.Close() })
	m.WriteConfig("sleep.yaml", testenv.ServiceYAML("sleep", "default", map[string]string{"app": "sleep"}, map[string]int{"http": 8080})+
		"---\n"+testenv.MustYAML(map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
		"metadata": map[string]any{"name": "sleep", "namespace": "default"},
		"spec":     map[string]any{"address": c.NS.IP.String(), "labels": map[string]string{"app": "sleep"}, "ports": map[string]int{"http": 8080}},
	}))
	m.WaitReady()
	captured := func(host, path string, headers map[string]string) (*testenv.Response, error) {
		req, err := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		if h := headers["Host"]; h != "" {
			req.Host = h
		}
		return testenv.Send(c.HTTP, req)
	}
	m.WaitConverged(func() error {
		r, err := captured("10.96.77.10:9080", "/", nil)
		if err != nil {
			return err
		}
		if r.Status != 200 || r.Echo == nil || r.Echo.Service != "reviews" {
			return fmt.Errorf("to reviews' cluster IP: %s", r)
		}
		return nil
	}, convergeTimeout)
	requireSyncedNoNACK(t, m)

	t.Run("http by cluster IP: VirtualService header match and weights", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 100; i++ {
			r, err := captured("10.96.77.10:9080", "/", nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != 200 || r.Echo == nil || r.Echo.Service != "reviews" {
				t.Fatalf("request %d: %s", i, r)
			}
			seen[r.Echo.Version]++
		}
		if seen["v1"] < 20 || seen["v2"] < 20 {
			t.Errorf("50/50 split over 100 requests: %v", seen)
		}
		for i := 0; i < 20; i++ {
			r, err := captured("10.96.77.10:9080", "/", map[string]string{"user-group": "beta"})
			if err != nil {
				t.Fatal(err)
			}
			if err := servedBy(r, "reviews", "v2"); err != nil {
				t.Fatalf("beta request %d: %v", i, err)
			}
		}
	})
	t.Run("routed by the address connected to, not Host", func(t *testing.T) {
		r, err := captured("10.96.77.11:9080", "/", map[string]string{"Host": "reviews"})
		if err != nil {
			t.Fatal(err)
		}
		if err := servedBy(r, "ratings", "v1"); err != nil {
			t.Errorf("to ratings' cluster IP with Host reviews: %v", err)
		}
	})
	t.Run("tcp by cluster IP", func(t *testing.T) {
		word, err := nsLine(c.NS, "10.96.77.12:9000", "ping")
		if err != nil || word != "hello" {
			t.Errorf("tcp-echo by its cluster IP: %q, %v", word, err)
		}
	})
	t.Run("passthrough to an address the mesh does not know", func(t *testing.T) {
		l, err := net.Listen("tcp", net.JoinHostPort(c.NS.HostIP.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "outside saw %s", r.RemoteAddr)
		}))
		r, err := captured(l.Addr().String(), "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		// The sidecar's connection leaves from the pod IP, as the app's.
		if r.Status != 200 || !strings.HasPrefix(string(r.Body), "outside saw "+c.NS.IP.String()+":") {
			t.Errorf("passthrough: %s", r)
		}
		if got := admin(t, c.AdminAddress, "/stats"); !strings.Contains(got, "PassthroughCluster") {
			t.Errorf("the sidecar's stats name no PassthroughCluster traffic:\n%.2000s", got)
		}
	})
	t.Run("inbound capture to the app", func(t *testing.T) {
		client := m.AddClient(testenv.ClientOptions{Name: "caller"})
		m.WaitConverged(func() error {
			r, err := client.Get("sleep:8080", "/", nil)
			if err != nil {
				return err
			}
			// Istio's default inbound policy (PASSTHROUGH): the sidecar
			// connects to the pod's own address from 127.0.0.6, which
			// the capture lets through.
			if r.Status != 200 || !strings.HasPrefix(string(r.Body), "sleep app saw sleep:8080 from 127.0.0.6:") {
				return fmt.Errorf("via the mesh to sleep: %s", r)
			}
			return nil
		}, convergeTimeout)
	})
}

// nsLine is tcpLine from inside ns.
func nsLine(ns *netnstest.NS, addr, line string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := ns.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	word, _, _ := strings.Cut(answer, " ")
	return word, nil
}

// admin reads path from a proxy's admin endpoint.
func admin(t *testing.T, addr, path string) string {
	t.Helper()
	r, err := testenv.Send(&http.Client{Timeout: 10 * time.Second}, mustRequest(t, "http://"+addr+path))
	if err != nil {
		t.Fatal(err)
	}
	return string(r.Body)
}

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
