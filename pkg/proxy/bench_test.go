package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/echo"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

// BenchmarkSidecarRequest measures one HTTP/1.1 request through a sidecar's
// outbound listener to an echo backend (1 KB response), against the same
// request sent straight to the backend in the same run: a GET, and a POST
// with a 1 KB body (as bench/sidecar.sh sends). The route has Istio's
// default retry policy, so the POST's body is kept for a retry.
// Allocations count the whole process: client, sidecar and backend.
func BenchmarkSidecarRequest(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app := echo.New(echo.Options{Address: "127.0.0.1:0", Service: "bench"})
	appAddr, err := app.Start(ctx)
	if err != nil {
		b.Fatal(err)
	}
	_, appPort, _ := net.SplitHostPort(appAddr)
	dec := config.Decode([]byte(fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: bench}
spec: {selector: {app: bench}, ports: [{name: http, port: 8080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: bench-0}
spec: {address: 127.0.0.1, labels: {app: bench}, ports: {http: %s}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench}
spec:
  hosts: [bench]
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: bench}}]
  - route: [{destination: {host: bench}}]
`, appPort)), config.DecodeOptions{File: "bench.yaml"})
	push := model.NewPushContext(model.PushOptions{Mesh: meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{}), Resources: dec.Resources})
	srv := xdsserver.New(xdsserver.Options{Generate: func(p *model.Proxy) (*xdsgen.Resources, error) { return xdsgen.Generate(push, p) }})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ctx, lis)
	outbound, admin := freeAddr(b), freeAddr(b)
	px := proxy.New(proxy.Options{XDSAddress: lis.Addr().String(), AdminAddress: admin,
		Identity: model.Proxy{Type: model.Sidecar, Name: "c", Namespace: "default", OutboundAddress: outbound}})
	go px.Run(ctx)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	waitReady(b, "http://"+admin+"/ready")

	payload := bytes.Repeat([]byte("p"), 1024)
	h2c := &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	run := func(b *testing.B, method, url, host string) {
		client := client
		if strings.HasPrefix(b.Name(), "BenchmarkSidecarRequest/h2c-") {
			client = h2c
		}
		req, _ := http.NewRequest(method, url, nil)
		req.Host = host
		rd := bytes.NewReader(payload)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if method == "POST" {
				rd.Reset(payload)
				req.Body, req.ContentLength = io.NopCloser(rd), int64(len(payload))
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, "GET", "http://"+appAddr+"/?size=1024", "bench:8080") })
	b.Run("sidecar", func(b *testing.B) { run(b, "GET", "http://"+outbound+"/?size=1024", "bench:8080") })
	b.Run("direct-POST-1KiB", func(b *testing.B) { run(b, "POST", "http://"+appAddr+"/?size=1024", "bench:8080") })
	b.Run("sidecar-POST-1KiB", func(b *testing.B) { run(b, "POST", "http://"+outbound+"/?size=1024", "bench:8080") })
	// The same over h2c with prior knowledge, one connection.
	b.Run("h2c-direct", func(b *testing.B) { run(b, "GET", "http://"+appAddr+"/?size=1024", "bench:8080") })
	b.Run("h2c-sidecar", func(b *testing.B) { run(b, "GET", "http://"+outbound+"/?size=1024", "bench:8080") })
	b.Run("h2c-direct-POST-1KiB", func(b *testing.B) { run(b, "POST", "http://"+appAddr+"/?size=1024", "bench:8080") })
	b.Run("h2c-sidecar-POST-1KiB", func(b *testing.B) { run(b, "POST", "http://"+outbound+"/?size=1024", "bench:8080") })
}

func waitReady(b *testing.B, url string) {
	for i := 0; i < 500; i++ {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		timeSleep()
	}
	b.Fatal("proxy not ready")
}
