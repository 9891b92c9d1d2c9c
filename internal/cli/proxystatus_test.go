package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/inspect"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// rawADS opens an ADS stream as a proxy named name would, asks for CDS
// and returns the stream and the first answer.
func rawADS(t *testing.T, m *inspectMesh, name string) (discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, *discovery.DiscoveryResponse) {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(m.state, ca.FileBootstrapToken))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(m.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(tok)))
	s, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := (&model.Proxy{Type: model.Sidecar, Name: name, Namespace: "default", IPs: []string{"127.0.0.1"}, ServiceAccount: "default"}).Node()
	if err := s.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return s, resp
}

// `sluice proxy-status` prints every connected proxy's per-type state as
// istioctl does: a real sidecar all SYNCED, a proxy that rejected CDS as
// NACK with its message, one that has not answered as STALE.
func TestProxyStatus(t *testing.T) {
	m := startInspectMesh(t)
	nacker, cds := rawADS(t, m, "nacker")
	if err := nacker.Send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: cds.Nonce,
		ErrorDetail: &rpcstatus.Status{Message: "cluster outbound|80||reviews.example.com: field x: not supported"}}); err != nil {
		t.Fatal(err)
	}
	rawADS(t, m, "silent")

	synced := regexp.MustCompile(`^productpage\.default\s+-\s+SYNCED \(\d+s\)\s+SYNCED \(\d+s\)\s+SYNCED \(\d+s\)\s+SYNCED \(\d+s\)\s+` +
		regexp.QuoteMeta(m.http) + `\s+\d+$`)
	var out string
	err := testenv.Eventually(func() error {
		var err error
		if out, err = run(t, "proxy-status", "--address", m.http); err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 5 {
			return fmt.Errorf("%d lines", len(lines))
		}
		checks := []struct {
			line int
			re   string
		}{
			{0, `^NAME\s+CLUSTER\s+CDS\s+LDS\s+EDS\s+RDS\s+ISTIOD\s+VERSION$`},
			{1, `^nacker\.default\s+-\s+NACK \(\d+s\)\s+NOT SENT\s+NOT SENT\s+NOT SENT\s+`},
			{2, synced.String()},
			{3, `^silent\.default\s+-\s+STALE\s+NOT SENT\s+NOT SENT\s+NOT SENT\s+`},
			{4, `^nacker\.default CDS NACK \(version [0-9a-f]+\): cluster outbound\|80\|\|reviews\.example\.com: field x: not supported$`},
		}
		for _, c := range checks {
			if !regexp.MustCompile(c.re).MatchString(lines[c.line]) {
				return fmt.Errorf("line %d %q does not match %s", c.line, lines[c.line], c.re)
			}
		}
		return nil
	}, 10*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	out, err = run(t, "proxy-status", "--address", m.http, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []inspect.ProxyRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rows) != 3 || rows[0].Name != "nacker.default" || rows[0].Types[0].Status != inspect.Nack ||
		!strings.Contains(rows[0].Types[0].Nack, "field x") || rows[1].ID != m.sidecar.NodeID() || rows[1].Version == 0 {
		t.Errorf("-o json: %s", out)
	}
	for _, ts := range rows[1].Types {
		if ts.Status != inspect.Synced || ts.SentVersion == "" || ts.SentVersion != ts.AckedVersion {
			t.Errorf("sidecar %s: %+v", ts.Type, ts)
		}
	}
	if out, err = run(t, "proxy-status", "--address", m.http, "-o", "yaml"); err != nil || !strings.Contains(out, "  name: nacker.default\n") || !strings.Contains(out, "status: NACK") {
		t.Errorf("-o yaml: %v\n%s", err, out)
	}
}
