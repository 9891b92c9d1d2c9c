package cli

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/controlplane"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
)

// inspectMesh is a real control plane and a real sidecar run in this
// process, with real listeners, for the istioctl-like commands.
type inspectMesh struct {
	http, xds, state string
	admin            string
	// sidecar is the connected proxy's node.
	sidecar model.Proxy
}

const inspectConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.9, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.example.com
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      outlierDetection: {consecutive5xxErrors: 1, interval: 10s, baseEjectionTime: 5m, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.example.com]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews.example.com, subset: v1}}]
`

func startInspectMesh(t *testing.T) *inspectMesh {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "reviews.yaml"), []byte(inspectConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &inspectMesh{http: testenv.FreeAddr(), xds: testenv.FreeAddr(), state: t.TempDir(), admin: testenv.FreeAddr()}
	c, err := controlplane.New(controlplane.Options{ConfigDir: dir, Mesh: meshconfig.Default(),
		XDSAddress: m.xds, HTTPAddress: m.http, Logger: slog.New(slog.DiscardHandler),
		Security: controlplane.SecurityOptions{StateDir: m.state}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- c.Run(ctx) }()
	testenv.WaitHTTP(t, "http://"+m.http+"/ready", 200, 10*time.Second)

	m.sidecar = model.Proxy{Type: model.Sidecar, Name: "productpage", Namespace: "default", IPs: []string{"127.0.0.1"},
		ServiceAccount: "default", OutboundAddress: testenv.FreeAddr(), Labels: map[string]string{"app": "productpage"}}
	p := proxy.New(proxy.Options{Identity: m.sidecar, XDSAddress: m.xds, AdminAddress: m.admin, TrustDomain: "cluster.local",
		ControlPlane: identity.ControlPlane{TokenFile: filepath.Join(m.state, ca.FileBootstrapToken)},
		Logger:       slog.New(slog.DiscardHandler)})
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	testenv.WaitHTTP(t, "http://"+m.admin+"/ready", 200, 10*time.Second)
	return m
}
