package httpproxy_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestH2UpstreamPoolLimits: with h2UpgradePolicy UPGRADE the requests go
// upstream as HTTP/2 streams multiplexed on one connection, and
// http2MaxRequests counts streams sent, not pending requests: with
// maxConnections 1, http2MaxRequests 4 and a server taking 4 streams at
// once, 8 concurrent requests all succeed (4 wait pending), none overflow.
func TestH2UpstreamPoolLimits(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	protos := map[string]int{}
	conns := map[string]bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos[r.Proto]++
		conns[r.RemoteAddr] = true
		mu.Unlock()
		if r.URL.Path != "/warm" {
			time.Sleep(200 * time.Millisecond)
		}
		fmt.Fprintln(w, "ok")
	}))
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = p
	srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 4}
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	m := newMesh(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{name: http, port: 8080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-0}
spec: {address: 127.0.0.1, labels: {app: web}, ports: {http: %s}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {h2UpgradePolicy: UPGRADE, http2MaxRequests: 4, http1MaxPendingRequests: 100}
`, port)+vs(`  - retries: {attempts: 0}
    route: [{destination: {host: web}}]
`))
	// The connection learns the server's stream limit first.
	if a := m.get("web:8080", "/warm"); a.status != 200 {
		t.Fatalf("warm-up: %d %q", a.status, a.body)
	}
	statuses := make(chan int, 8)
	for range 8 {
		go func() { statuses <- m.get("web:8080", "/").status }()
	}
	for range 8 {
		if s := <-statuses; s != 200 {
			t.Errorf("status %d, want 200 (pending requests do not count against http2MaxRequests)", s)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if protos["HTTP/2.0"] != 9 || len(conns) != 1 {
		t.Errorf("upstream saw %v on %d connections, want 9 HTTP/2.0 requests on 1", protos, len(conns))
	}
	if n := m.stat("cluster." + webCluster + ".upstream_rq_pending_overflow"); n != 0 {
		t.Errorf("upstream_rq_pending_overflow %d, want 0", n)
	}
	if n := m.stat("cluster." + webCluster + ".upstream_rq_pending_total"); n < 5 {
		t.Errorf("upstream_rq_pending_total %d, want at least 5 (the first dial and 4 over the stream limit)", n)
	}
}
