package controlplane

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluice-mesh/sluice/pkg/inspect"
	"github.com/sluice-mesh/sluice/pkg/workloadapi"
	wdssecurity "github.com/sluice-mesh/sluice/pkg/workloadapi/security"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

const ztunnelNode = "ztunnel~10.0.0.100~ztunnel-abc.istio-system~istio-system.svc.cluster.local"

const wdsService = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.internal]
  addresses: [240.0.0.5]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-only, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  rules: [{from: [{source: {namespaces: [shop]}}]}]
`

func wdsEntry(addr string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: shop}
spec: {address: %s, serviceAccount: db, labels: {app: db}, ports: {tcp: 5433}}
`, addr)
}

// deltaADS is a ztunnel's delta ADS stream; responses arrive on resp.
type deltaADS struct {
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	resp   chan *discovery.DeltaDiscoveryResponse
	err    chan error
}

func (r *running) dial(t *testing.T) (context.Context, discovery.AggregatedDiscoveryServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient(r.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.bootstrapToken(t)),
		discovery.NewAggregatedDiscoveryServiceClient(conn)
}

func (r *running) openZtunnel(t *testing.T, known ...string) *deltaADS {
	t.Helper()
	ctx, client := r.dial(t)
	s, err := client.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := &deltaADS{stream: s, resp: make(chan *discovery.DeltaDiscoveryResponse, 16), err: make(chan error, 1)}
	go func() {
		for {
			m, err := s.Recv()
			if err != nil {
				d.err <- err
				return
			}
			d.resp <- m
		}
	}()
	// As Istio's ztunnel subscribes: a wildcard request per type; on a
	// reconnect, the Address names it holds with empty versions
	// (ztunnel src/xds/client.rs run_internal).
	for _, typeURL := range []string{xdsgen.AddressType, xdsgen.AuthorizationType} {
		req := &discovery.DeltaDiscoveryRequest{Node: &core.Node{Id: ztunnelNode}, TypeUrl: typeURL}
		if typeURL == xdsgen.AddressType && len(known) > 0 {
			req.InitialResourceVersions = map[string]string{}
			for _, n := range known {
				req.InitialResourceVersions[n] = ""
			}
		}
		if err := s.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// next returns the next response of typeURL (ACKing it), skipping none:
// another type's response fails the test.
func (d *deltaADS) next(t *testing.T, typeURL string) *discovery.DeltaDiscoveryResponse {
	t.Helper()
	select {
	case m := <-d.resp:
		if m.TypeUrl != typeURL {
			t.Fatalf("got a %s response, want %s", m.TypeUrl, typeURL)
		}
		if err := d.stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: m.TypeUrl, ResponseNonce: m.Nonce}); err != nil {
			t.Fatal(err)
		}
		return m
	case err := <-d.err:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s response", typeURL)
	}
	return nil
}

func addresses(t *testing.T, m *discovery.DeltaDiscoveryResponse) map[string]*workloadapi.Address {
	t.Helper()
	out := map[string]*workloadapi.Address{}
	for _, r := range m.Resources {
		a := &workloadapi.Address{}
		if err := r.Resource.UnmarshalTo(a); err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		if xdsgen.AddressName(a) != r.Name {
			t.Errorf("resource %q holds %q", r.Name, xdsgen.AddressName(a))
		}
		out[r.Name] = a
	}
	return out
}

func workloadIP(w *workloadapi.Workload) string {
	if len(w.GetAddresses()) != 1 {
		return fmt.Sprint(w.GetAddresses())
	}
	a, _ := netip.AddrFromSlice(w.GetAddresses()[0])
	return a.String()
}

// TestZtunnelDeltaWDS opens a real delta ADS stream to a running control
// plane as a ztunnel node, receives the workload API (Address and
// Authorization, decoded with the generated types), then sees a
// WorkloadEntry's edit and its removal arrive as the changed Address and
// a removed resource name.
func TestZtunnelDeltaWDS(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"svc.yaml": wdsService, "we.yaml": wdsEntry("10.0.0.5")} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := start(t, dir, DebounceOptions{Quiet: 50 * time.Millisecond, MaxDelay: time.Second})
	z := r.openZtunnel(t)

	const uid = "Kubernetes/networking.istio.io/WorkloadEntry/shop/db-1"
	first := addresses(t, z.next(t, xdsgen.AddressType))
	if names := sortedKeys(first); !slices.Equal(names, []string{uid, "shop/db.shop.internal"}) {
		t.Fatalf("addresses %q", names)
	}
	w := first[uid].GetWorkload()
	if workloadIP(w) != "10.0.0.5" || w.GetServiceAccount() != "db" ||
		w.GetServices()["shop/db.shop.internal"].GetPorts()[0].GetTargetPort() != 5433 ||
		!slices.Equal(w.GetAuthorizationPolicies(), []string{"shop/db-only"}) {
		t.Errorf("workload: %v", w)
	}
	authz := z.next(t, xdsgen.AuthorizationType)
	if len(authz.Resources) != 1 || authz.Resources[0].Name != "shop/db-only" {
		t.Fatalf("authorizations %v", authz.Resources)
	}
	pol := &wdssecurity.Authorization{}
	if err := authz.Resources[0].Resource.UnmarshalTo(pol); err != nil {
		t.Fatal(err)
	}
	if pol.GetAction() != wdssecurity.Action_ALLOW || pol.GetScope() != wdssecurity.Scope_WORKLOAD_SELECTOR ||
		pol.GetGroups()[0].GetRules()[0].GetMatches()[0].GetNamespaces()[0].GetExact() != "shop" {
		t.Errorf("authorization: %v", pol)
	}

	// The debug views read what was sent: the config dump (decoded with
	// the generated types) and proxy-status's WDS and WADS columns.
	cl := &inspect.Client{Address: r.http}
	dump, err := cl.ConfigDump(ztunnelNode)
	if err != nil {
		t.Fatal(err)
	}
	if td := dump[xdsgen.AddressType]; len(td.Resources) != 2 {
		t.Errorf("config dump: %d Address resources", len(td.Resources))
	} else if err := protojson.Unmarshal(td.Resources[0], &workloadapi.Address{}); err != nil {
		t.Errorf("config dump Address: %v", err)
	}
	waitUntil(t, "proxy-status SYNCED", func() error {
		list, err := cl.Proxies()
		if err != nil {
			return err
		}
		rows := inspect.StatusRows(list, r.http)
		if len(rows) != 1 || len(rows[0].Types) != 6 || rows[0].Types[0].Status != inspect.Ignored ||
			rows[0].Types[4].Status != inspect.Synced || rows[0].Types[5].Status != inspect.Synced {
			return fmt.Errorf("rows %+v", rows)
		}
		return nil
	})

	// An edit: only the changed workload is sent (the service is the same).
	r.write(t, "we.yaml", wdsEntry("10.0.0.6"))
	upd := addresses(t, z.next(t, xdsgen.AddressType))
	if names := sortedKeys(upd); !slices.Equal(names, []string{uid}) || workloadIP(upd[uid].GetWorkload()) != "10.0.0.6" {
		t.Fatalf("after the edit: %v", upd)
	}
	// The removal: the workload's name in removed_resources.
	if err := os.Remove(filepath.Join(dir, "we.yaml")); err != nil {
		t.Fatal(err)
	}
	gone := z.next(t, xdsgen.AddressType)
	if !slices.Equal(gone.RemovedResources, []string{uid}) || len(gone.Resources) != 0 {
		t.Fatalf("after the removal: removed %q, updated %d", gone.RemovedResources, len(gone.Resources))
	}

	// A ztunnel reconnecting with what it held: everything is sent again
	// (it gives no versions), and what is gone is named removed.
	re := r.openZtunnel(t, uid, "shop/db.shop.internal")
	resp := re.next(t, xdsgen.AddressType)
	if names := sortedKeys(addresses(t, resp)); !slices.Equal(names, []string{"shop/db.shop.internal"}) ||
		!slices.Equal(resp.RemovedResources, []string{uid}) {
		t.Fatalf("reconnect: sent %q, removed %q", names, resp.RemovedResources)
	}
}

// TestZtunnelSotWRefused: Istio's ztunnel protocol is delta only; a state
// of the world stream asking for the workload API ends with the reason.
func TestZtunnelSotWRefused(t *testing.T) {
	r := start(t, t.TempDir(), DebounceOptions{Quiet: 50 * time.Millisecond, MaxDelay: time.Second})
	ctx, client := r.dial(t)
	s, err := client.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: ztunnelNode}, TypeUrl: xdsgen.AddressType}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "delta (incremental) ADS streams only") {
		t.Fatalf("got %v, want InvalidArgument naming delta", err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
