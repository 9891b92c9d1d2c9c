package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mesh/sluice/bench/internal/benchproc"
)

// mesh is the sluice side of the bench: a control plane and, on the
// proxy CPU, a client sidecar (the app's outbound, and TCP passthrough on
// tcpIP), a server sidecar in front of the backend (auto mTLS between the
// two) and a router serving a Gateway.
type mesh struct {
	control, client, server, router *benchproc.Process
	// outbound is the client sidecar's HTTP outbound address; tcpAddr its
	// TCP passthrough listener for bench-tcp; gateway the router's port.
	outbound, tcpAddr, gateway string
	// admin is each proxy's admin address (profiles).
	admin map[*benchproc.Process]string
}

// Hosts the client sidecar is given: straight to the backend (plaintext,
// no sidecar there) or to the server sidecar (auto mTLS).
const (
	hostDirect = "bench-direct:8080"
	hostMTLS   = "bench:8080"
	tcpIP      = "127.0.0.2"
)

func (e *env) startMesh(ctx context.Context) (*mesh, error) {
	cfg := filepath.Join(e.dir, "config")
	if err := os.MkdirAll(cfg, 0o755); err != nil {
		return nil, err
	}
	serverIn, tcpPort := freePort("127.0.0.1"), freePort(tcpIP)
	gwPort := freePort("127.0.0.1")
	if err := os.WriteFile(filepath.Join(cfg, "bench.yaml"), []byte(meshYAML(e.backend, e.backendTCP, serverIn, tcpPort)), 0o644); err != nil {
		return nil, err
	}
	m := &mesh{outbound: addr(freePort("127.0.0.1")), tcpAddr: tcpIP + ":" + strconv.Itoa(tcpPort), gateway: addr(gwPort),
		admin: map[*benchproc.Process]string{}}
	xds, ctl, state := addr(freePort("127.0.0.1")), addr(freePort("127.0.0.1")), filepath.Join(e.dir, "state")
	var err error
	m.control, err = e.start(benchproc.Options{Name: "control", Bin: e.o.sluice, CPUs: e.o.loadCPU,
		Args: []string{"control", "--config-dir", cfg, "--xds-address", xds, "--http-address", ctl, "--state-dir", state}})
	if err != nil {
		return nil, err
	}
	if err := m.control.WaitReady(ctx, "http://"+ctl+"/ready", time.Minute); err != nil {
		return nil, err
	}
	proxy := func(name string, args ...string) (*benchproc.Process, error) {
		admin := addr(freePort("127.0.0.1"))
		p, err := e.start(benchproc.Options{Name: name, Bin: e.o.sluice, CPUs: e.o.proxyCPU, Args: append([]string{"proxy", "--name", name,
			"--xds-address", xds, "--token-file", filepath.Join(state, "bootstrap-token"), "--ca-root-file", filepath.Join(state, "root-cert.pem"),
			"--admin-address", admin, "--concurrency", "1", "--log-level", "warn"}, args...)})
		if err != nil {
			return nil, err
		}
		m.admin[p] = admin
		return p, p.WaitReady(ctx, "http://"+admin+"/ready", time.Minute)
	}
	if m.client, err = proxy("bench-client", "--labels", "app=bench-client", "--outbound-address", m.outbound, "--outbound-tcp-ip", tcpIP); err != nil {
		return nil, err
	}
	if m.server, err = proxy("bench-server", "--labels", "app=bench,security.istio.io/tlsMode=istio", "--outbound-address", addr(freePort("127.0.0.1")),
		"--inbound-address", addr(serverIn), "--app-address", addr(e.backend)); err != nil {
		return nil, err
	}
	if m.router, err = proxy("bench-gateway", "--type", "router", "--labels", "istio=ingressgateway", "--bind-address", "127.0.0.1",
		"--port-offset", strconv.Itoa(gwPort-80)); err != nil {
		return nil, err
	}
	return m, m.check(ctx)
}

// check waits until every path answers, and checks the two-sidecar path
// is mutual TLS: the server sidecar hands the backend the client's
// identity in X-Forwarded-Client-Cert.
func (m *mesh) check(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := m.checkOnce()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the mesh does not serve the bench paths: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (m *mesh) checkOnce() error {
	for _, c := range []struct{ url, host, want string }{
		{"http://" + m.outbound + "/debug", hostDirect, "Host: bench-direct:8080"},
		{"http://" + m.outbound + "/debug", hostMTLS, "URI=spiffe://cluster.local/ns/default/sa/default"},
		{"http://" + m.gateway + "/debug", "", "200"},
	} {
		body, err := get(c.url, c.host)
		if err != nil {
			return err
		}
		if !strings.Contains(body, c.want) {
			return fmt.Errorf("%s (Host %s): no %q in\n%s", c.url, c.host, c.want, body)
		}
	}
	return nil
}

func get(url, host string) (string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s (Host %s): %s", url, host, resp.Status)
	}
	return "200\n" + string(b), nil
}

// meshYAML is the bench's Istio config: bench-direct (the backend, no
// sidecar), bench (the server sidecar, tlsMode istio: auto mTLS),
// bench-tcp (the backend's TCP echo) and a Gateway routing every host to
// bench-direct.
func meshYAML(backend, backendTCP, serverIn, tcpPort int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: bench-direct}
spec:
  selector: {app: bench-direct}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: bench-direct-0}
spec: {address: 127.0.0.1, labels: {app: bench-direct}, ports: {http: %d}}
---
apiVersion: v1
kind: Service
metadata: {name: bench}
spec:
  selector: {app: bench}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: bench-0}
spec: {address: 127.0.0.1, labels: {app: bench, security.istio.io/tlsMode: istio}, ports: {http: %d}}
---
apiVersion: v1
kind: Service
metadata: {name: bench-tcp}
spec:
  selector: {app: bench-tcp}
  ports: [{name: tcp, port: %d}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: bench-tcp-0}
spec: {address: 127.0.0.1, labels: {app: bench-tcp}, ports: {tcp: %d}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bench}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench}
spec:
  hosts: ["*"]
  gateways: [bench]
  http: [{route: [{destination: {host: bench-direct, port: {number: 8080}}}]}]
`, backend, serverIn, tcpPort, backendTCP)
}
