package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"google.golang.org/grpc/metadata"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/controlplane"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// `sluice status` prints each connected sidecar's inbound ports with the
// effective PeerAuthentication mode and its mTLS and plaintext connection
// counts, "-" where the proxy does not report one.
func TestStatusShowsMTLS(t *testing.T) {
	dir := t.TempDir()
	cfg := `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
`
	if err := os.WriteFile(filepath.Join(dir, "pa.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr, xdsAddr, state := testenv.FreeAddr(), testenv.FreeAddr(), t.TempDir()
	c, err := controlplane.New(controlplane.Options{ConfigDir: dir, Mesh: meshconfig.Default(),
		XDSAddress: xdsAddr, HTTPAddress: httpAddr, Logger: slog.New(slog.DiscardHandler),
		Security: controlplane.SecurityOptions{StateDir: state}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.WaitHTTP(t, "http://"+httpAddr+"/ready", 200, 10*time.Second)

	// The proxy's admin /stats, on a real socket: port 20001 reports its
	// counters, port 20002 does not.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "listener.virtualInbound_20001.downstream_cx_mtls: 7\nlistener.virtualInbound_20001.downstream_cx_plaintext: 2\n")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	p := model.Proxy{Type: model.Sidecar, Name: "cart-0", Namespace: "shop", IPs: []string{"127.0.0.1"}, Labels: map[string]string{"app": "cart"},
		Inbound:      []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}, {Address: "127.0.0.1:20002", App: "127.0.0.1:30002"}},
		AdminAddress: l.Addr().String()}
	p.ID = p.NodeID()
	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	token, err := os.ReadFile(filepath.Join(state, ca.FileBootstrapToken))
	if err != nil {
		t.Fatal(err)
	}
	sctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(token)))
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: p.Node(), TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}

	out, err := runStatus(t, httpAddr)
	if err != nil {
		t.Fatalf("sluice status: %v\n%s", err, out)
	}
	for _, re := range []string{
		`WORKLOAD\s+PORT\s+MTLS MODE\s+MTLS CONNS\s+PLAINTEXT CONNS\s+PEERAUTHENTICATION`,
		`shop/cart-0\s+20001\s+STRICT\s+7\s+2\s+namespace shop/default`,
		`shop/cart-0\s+20002\s+STRICT\s+-\s+-\s+namespace shop/default`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %q:\n%s", re, out)
		}
	}
	out, err = runStatus(t, httpAddr, "--json")
	if err != nil {
		t.Fatalf("sluice status --json: %v\n%s", err, out)
	}
	var st struct {
		MTLS []controlplane.WorkloadMTLS `json:"mtls"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(st.MTLS) != 1 || len(st.MTLS[0].Ports) != 2 || st.MTLS[0].Ports[0].MTLS == nil || *st.MTLS[0].Ports[0].MTLS != 7 || st.MTLS[0].Ports[1].MTLS != nil {
		t.Errorf("--json mtls: %+v", st.MTLS)
	}
}
