package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// logBuffer collects a controller's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the log lines holding every one of parts.
func (b *logBuffer) lines(parts ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		ok := l != ""
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// running is a controller run in this process with real listeners.
type running struct {
	c    *Controller
	http string
	xds  string
	log  *logBuffer
	dir  string
	// state is the control plane's --state-dir (bootstrap token, roots).
	state string
}

func start(t *testing.T, dir string, debounce DebounceOptions) *running {
	t.Helper()
	return startWith(t, Options{ConfigDir: dir, Debounce: debounce})
}

// startWith runs a controller with opts, filling in addresses, mesh
// config, logger and a state folder.
func startWith(t *testing.T, opts Options) *running {
	t.Helper()
	r := &running{http: testenv.FreeAddr(), xds: testenv.FreeAddr(), log: &logBuffer{}, dir: opts.ConfigDir, state: t.TempDir()}
	opts.Mesh, opts.XDSAddress, opts.HTTPAddress = meshconfig.Default(), r.xds, r.http
	opts.Security.StateDir = r.state
	opts.Logger = slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testenv.WaitHTTP(t, "http://"+r.http+"/ready", 200, 10*time.Second)
	return r
}

// status GETs /debug/status over HTTP.
func (r *running) status(t *testing.T) Status {
	t.Helper()
	resp, err := http.Get("http://" + r.http + "/debug/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (r *running) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, check func() error) {
	t.Helper()
	if err := testenv.Eventually(check, 10*time.Second); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func vs(name, subset string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %s}
spec:
  hosts: [%s]
  http:
  - route:
    - destination: {host: %s, subset: %s}
`, name, name, name, subset)
}

const authz = `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: deny-all, namespace: shop}
spec:
  url: oci://example/plugin
`

// configState is what the controller holds now.
type configState struct {
	version uint64
	subsets []string
}

func (c *Controller) status() configState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := configState{version: c.current.Version}
	for _, r := range c.current.Resources {
		st.subsets = append(st.subsets, fmt.Sprint(r.Spec))
	}
	return st
}

// ads is one ADS stream as a proxy opens it.
type ads struct {
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	close  func()
}

// bootstrapToken is the token the control plane wrote.
func (r *running) bootstrapToken(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(r.state, "bootstrap-token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (r *running) openADS(t *testing.T, node string) *ads {
	return r.openADSNode(t, &core.Node{Id: node})
}

// openADSNode opens an ADS stream announcing node and asks for CDS.
func (r *running) openADSNode(t *testing.T, node *core.Node) *ads {
	conn, err := grpc.NewClient(r.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.bootstrapToken(t))
	s, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	a := &ads{stream: s, close: func() { cancel(); conn.Close() }}
	t.Cleanup(a.close)
	return a
}

// cds waits for the CDS answer to the first request.
func (a *ads) cds(t *testing.T) *discovery.DiscoveryResponse {
	resp, err := a.stream.Recv()
	if err != nil {
		t.Error(err)
		return nil
	}
	if resp.TypeUrl != resourcev3.ClusterType {
		t.Errorf("first response is %s", resp.TypeUrl)
	}
	return resp
}
