package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
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

// TestTelemetryMetrics: the Telemetry API's metrics overrides through
// real proxies (client sidecar -> server sidecar -> echo), each step a
// live config change, read off each sidecar's /stats/prometheus:
//  1. a root-namespace Telemetry adds a `user` dimension from
//     request.headers['x-user'] to REQUEST_COUNT in CLIENT mode and
//     removes request_protocol from it in SERVER mode;
//  2. a namespace Telemetry disabling metrics records nothing, and its
//     removal brings them back;
//  3. a bad expression is refused at load time, the error naming the
//     file, the resource and the field, and the last good config stays.
func TestTelemetryMetrics(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	srv := service(t, m, "ratings", map[string]int{"http": 9080}, "v1")[0]
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	m.WaitConverged(func() error { return allServedBy(c, 1, "ratings:9080", "/", nil, "ratings", "v1") }, convergeTimeout)
	request := func(user string) {
		t.Helper()
		if r := get(t, c, "ratings:9080", "/", map[string]string{"X-User": user}); r.Status != 200 {
			t.Fatalf("user %s: %s", user, r)
		}
	}
	apply := func(name, yaml string) {
		t.Helper()
		m.WriteConfig(name, yaml)
		m.WaitSynced(convergeTimeout)
	}
	client := map[string]string{"reporter": "source", "destination_service": "ratings.default.svc.cluster.local"}
	server := map[string]string{"reporter": "destination", "destination_service": "ratings.default.svc.cluster.local"}
	with := func(base map[string]string, kv ...string) map[string]string {
		out := maps.Clone(base)
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	waitSeries := func(admin string, want map[string]string, n float64) {
		t.Helper()
		err := testenv.Eventually(func() error {
			return hasSeries(scrape(t, admin), "istio_requests_total", n, want)
		}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
	}

	// 1. CLIENT adds user, SERVER removes request_protocol.
	const good = `  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      tagOverrides:
        user: {value: "request.headers['x-user']"}
    - match: {metric: REQUEST_COUNT, mode: SERVER}
      tagOverrides:
        request_protocol: {operation: REMOVE}
`
	apply("telemetry-mesh.yaml", telemetryYAML("istio-system", "mesh-metrics", good))
	request("alice")
	request("alice")
	request("bob")
	waitSeries(c.AdminAddress, with(client, "user", "alice", "request_protocol", "http"), 2)
	waitSeries(c.AdminAddress, with(client, "user", "bob"), 1)
	// The server's series have no user and no request_protocol (empty is
	// absent to Prometheus); its count covers the three requests.
	waitSeries(srv.AdminAddress, with(server, "request_protocol", "", "user", ""), 3)
	for _, side := range []struct {
		admin string
		bad   map[string]string
	}{{c.AdminAddress, with(client, "user", "")}, {srv.AdminAddress, with(server, "request_protocol", "http")}} {
		if err := hasSeries(scrape(t, side.admin), "istio_requests_total", 1, side.bad); err == nil {
			t.Errorf("a series with %v", side.bad)
		}
	}

	// 2. The namespace disables metrics: nothing is recorded, by either
	// sidecar; removing that Telemetry records again.
	apply("telemetry-ns.yaml", telemetryYAML("default", "metrics-off",
		"  metrics: [{providers: [{name: prometheus}], overrides: [{match: {metric: ALL_METRICS}, disabled: true}]}]\n"))
	before := []float64{requestCount(scrape(t, c.AdminAddress)), requestCount(scrape(t, srv.AdminAddress))}
	request("carol")
	time.Sleep(time.Second)
	after := []float64{requestCount(scrape(t, c.AdminAddress)), requestCount(scrape(t, srv.AdminAddress))}
	if !slices.Equal(before, after) {
		t.Errorf("metrics disabled, yet istio_requests_total went from %v to %v (client, server)", before, after)
	}
	m.RemoveConfig("telemetry-ns.yaml")
	m.WaitSynced(convergeTimeout)
	request("dave")
	waitSeries(c.AdminAddress, with(client, "user", "dave"), 1)
	if err := hasSeries(scrape(t, c.AdminAddress), "istio_requests_total", 1, with(client, "user", "carol")); err == nil {
		t.Error("carol's request was counted while metrics were disabled")
	}

	// 3. A bad expression: refused naming file, resource and field; the
	// last good config (the user dimension) stays.
	m.WriteConfig("telemetry-mesh.yaml", telemetryYAML("istio-system", "mesh-metrics",
		strings.Replace(good, `request.headers['x-user']`, `request.nosuch`, 1)))
	field := `spec.metrics[0].overrides[0].tagOverrides["user"].value`
	m.WaitConverged(func() error {
		st, err := m.TryStatus()
		if err != nil {
			return err
		}
		if len(st.ErrorsMentioning("telemetry-mesh.yaml", "mesh-metrics", field, "request.nosuch")) == 0 {
			return fmt.Errorf("no config error naming the file, resource and %s: %v", field, st.ConfigErrors)
		}
		return nil
	}, convergeTimeout)
	m.WaitSynced(convergeTimeout)
	request("erin")
	waitSeries(c.AdminAddress, with(client, "user", "erin"), 1)
	if err := m.CheckNoNACK(); err != nil {
		t.Fatal(err)
	}
}

// requestCount is the sum of the istio_requests_total series.
func requestCount(fams map[string]*dto.MetricFamily) float64 {
	var n float64
	for _, mt := range fams["istio_requests_total"].GetMetric() {
		n += mt.GetCounter().GetValue()
	}
	return n
}
