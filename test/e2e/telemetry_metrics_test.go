package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestGRPCMessageMetrics: a real grpc-go client calls a real grpc-go
// server through its client sidecar and the server's sidecar (mTLS): two
// unary health checks and one bidirectional reflection stream of four
// messages each way. Both reporters count the requests as grpc with
// grpc_response_status 0, istio_request_messages_total and
// istio_response_messages_total count every message (6 each way), and the
// server side names the destination service from its inbound cluster's
// service metadata.
func TestGRPCMessageMetrics(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	reflection.RegisterV1(gs)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)

	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("svc.yaml", testenv.ServiceYAML("greeter", "default", map[string]string{"app": "greeter"}, map[string]int{"grpc": 7070}))
	srv := m.AddWorkload(testenv.WorkloadOptions{Service: "greeter", Version: "v1", PortName: "grpc", AppAddress: lis.Addr().String()})
	c := m.AddClient(testenv.ClientOptions{Name: "sleep", Labels: map[string]string{"app": "sleep"}})

	conn, err := grpc.NewClient("passthrough:///"+c.OutboundAddress, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("greeter:7070"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	check := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && r.Status != healthpb.HealthCheckResponse_SERVING {
			err = errors.New(r.Status.String())
		}
		return err
	}
	m.WaitConverged(check, convergeTimeout)
	// The series only count what follows: scrape a baseline.
	base := scrape(t, c.AdminAddress)
	baseSrv := scrape(t, srv.AdminAddress)
	if err := check(); err != nil {
		t.Fatal(err)
	}
	if err := check(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	st.CloseSend()
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}

	labels := map[string]string{"request_protocol": "grpc", "grpc_response_status": "0", "response_code": "200",
		"destination_service": "greeter.default.svc.cluster.local", "destination_service_name": "greeter"}
	for _, side := range []struct {
		reporter, admin string
		base            map[string]float64
	}{{"source", c.AdminAddress, seriesValues(base, labels, "source")}, {"destination", srv.AdminAddress, seriesValues(baseSrv, labels, "destination")}} {
		want := map[string]string{"reporter": side.reporter}
		for k, v := range labels {
			want[k] = v
		}
		err := testenv.Eventually(func() error {
			fams := scrape(t, side.admin)
			for name, n := range map[string]float64{"istio_requests_total": 3, "istio_request_messages_total": 6, "istio_response_messages_total": 6} {
				if err := hasSeries(fams, name, side.base[name]+n, want); err != nil {
					return err
				}
				if err := hasSeries(fams, name, side.base[name]+n+1, want); err == nil {
					t.Errorf("%s %s: more than %v counted", side.reporter, name, n)
				}
			}
			return nil
		}, 5*time.Second)
		if err != nil {
			t.Error(err)
		}
	}
}

// seriesValues is the value of the series of each message family whose
// labels include want and reporter (0 for none).
func seriesValues(fams map[string]*dto.MetricFamily, want map[string]string, reporter string) map[string]float64 {
	out := map[string]float64{}
	for _, name := range []string{"istio_requests_total", "istio_request_messages_total", "istio_response_messages_total"} {
	next:
		for _, mt := range fams[name].GetMetric() {
			got := map[string]string{}
			for _, lp := range mt.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if got["reporter"] != reporter {
				continue
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			out[name] = mt.GetCounter().GetValue()
		}
	}
	return out
}
