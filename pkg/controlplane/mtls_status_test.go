package controlplane

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/sluice-mesh/sluice/pkg/model"
)

const mtlsWorkload = `apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  selector: {app: db}
  ports: [{name: http, port: 8080}, {name: tcp-data, port: 9000}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-0, namespace: default}
spec: {address: 127.0.0.1, labels: {app: db, security.istio.io/tlsMode: istio}, ports: {http: 20001, tcp-data: 20002}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: db, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  portLevelMtls: {"20002": {mode: PERMISSIVE}}
`

// adminStats serves a proxy admin's /stats on a real socket.
func adminStats(t *testing.T, body string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, body) })
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// connectSidecar opens an ADS stream announcing p, as a sidecar does, and
// waits for its first CDS answer (its snapshot is published by then).
func connectSidecar(t *testing.T, r *running, p model.Proxy) {
	t.Helper()
	p.ID = p.NodeID()
	conn, err := grpc.NewClient(r.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.bootstrapToken(t))
	t.Cleanup(func() { cancel(); conn.Close() })
	s, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discovery.DiscoveryRequest{Node: p.Node(), TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
}

// /debug/status lists each connected sidecar's inbound ports with the
// effective PeerAuthentication mode and the counters its admin /stats
// reports; none reported (or no admin address) is null, not 0.
func TestStatusMTLS(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(mtlsWorkload), 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, dir, DebounceOptions{})
	admin := adminStats(t, "sluice.config.update_success: 3\n"+
		"listener.virtualInbound_20001.downstream_cx_mtls: 12\nlistener.virtualInbound_20001.downstream_cx_plaintext: 0\n"+
		"listener.virtualInbound_20002.downstream_cx_total: 4\nsome.text: value\n")
	inbound := []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}, {Address: "127.0.0.1:20002", App: "127.0.0.1:30002"}}
	connectSidecar(t, r, model.Proxy{Type: model.Sidecar, Name: "db-0", Namespace: "default", IPs: []string{"127.0.0.1"},
		Labels: map[string]string{"app": "db"}, Inbound: inbound, AdminAddress: admin})
	connectSidecar(t, r, model.Proxy{Type: model.Sidecar, Name: "web-0", Namespace: "web", IPs: []string{"127.0.0.2"},
		Labels: map[string]string{"app": "web"}, Inbound: []model.InboundPort{{Address: "127.0.0.2:20003", App: "127.0.0.2:30003"}}})

	r.write(t, "web.yaml", `apiVersion: v1
kind: Service
metadata: {name: web, namespace: web}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-0, namespace: web}
spec: {address: 127.0.0.2, labels: {app: web}, ports: {http: 20003}}
`)
	waitUntil(t, "web's WorkloadEntry in force", func() error {
		for _, w := range r.status(t).MTLS {
			if w.Name == "web-0" && len(w.Unlabelled) > 0 {
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
	got := map[string]string{}
	var web WorkloadMTLS
	for _, w := range r.status(t).MTLS {
		if w.Name == "web-0" {
			web = w
		}
		if w.Name == "db-0" && len(w.Unlabelled) != 0 {
			t.Errorf("db-0 unlabelled %v: its WorkloadEntry has the label", w.Unlabelled)
		}
		for _, p := range w.Ports {
			got[fmt.Sprintf("%s:%d", w.Name, p.Port)] = fmt.Sprintf("%s %s %s %s", p.Mode, show(p.MTLS), show(p.Plaintext), strings.Join(w.Policies, ","))
		}
	}
	want := map[string]string{
		"db-0:20001":  "STRICT 12 0 namespace default/default,workload default/db",
		"db-0:20002":  "PERMISSIVE - - namespace default/default,workload default/db",
		"web-0:20003": "PERMISSIVE - - ",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("mtls status\n got %v\nwant %v", got, want)
	}
	if len(web.Unlabelled) != 1 || web.Unlabelled[0] != "web.web.svc.cluster.local web/web-0 127.0.0.2:20003" {
		t.Errorf("web-0 unlabelled endpoints %v, want its WorkloadEntry without the tlsMode label", web.Unlabelled)
	}
	if !strings.Contains(web.StatsError, model.MetaAdminAddress) {
		t.Errorf("web-0 stats error %q, want one naming %s", web.StatsError, model.MetaAdminAddress)
	}

	// A policy edit shows at the next push.
	r.write(t, "strict-web.yaml", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n")
	waitUntil(t, "web-0 STRICT by the mesh policy", func() error {
		for _, w := range r.status(t).MTLS {
			if w.Name == "web-0" && len(w.Ports) == 1 && w.Ports[0].Mode == "STRICT" && strings.Join(w.Policies, ",") == "mesh istio-system/default" {
				return nil
			}
		}
		return fmt.Errorf("not yet: %+v", r.status(t).MTLS)
	})
}

func show(v *uint64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprint(*v)
}
