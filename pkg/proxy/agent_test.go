package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/kube/inject"
)

// TestAgentAppProbes runs a real sluice proxy with the app probers the
// injector writes and checks that its agent port answers each
// /app-health path as the app's HTTP, TCP and gRPC health says, as
// istio-agent does for the kubelet.
func TestAgentAppProbes(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	app := listen(t)
	go http.Serve(app, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || r.Header.Get("X-Probe") != "kubelet" {
			http.Error(w, "wrong path or header: "+r.URL.Path, http.StatusNotFound)
			return
		}
		if !healthy.Load() {
			http.Error(w, "app unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "app ok")
	}))
	tcp := listen(t)
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	grpcLis := listen(t)
	hs := health.NewServer()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(grpcLis)
	t.Cleanup(gs.Stop)
	hs.SetServingStatus("app", healthpb.HealthCheckResponse_SERVING)

	svc := "app"
	readyz, livez, startupz := inject.ProbePaths("app")
	probers, _ := json.Marshal(inject.AppProbers{
		readyz:   {HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt(port(app))}, TimeoutSeconds: 2},
		livez:    {TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(port(tcp))}},
		startupz: {GRPC: &corev1.GRPCAction{Port: int32(port(grpcLis)), Service: &svc}},
	})
	mesh := testenv.NewMesh(t, testenv.MeshOptions{})
	agent := testenv.FreeAddr()
	args := append([]string{"proxy", "--name", "app-0", "--labels", "app=app", "--admin-address", testenv.FreeAddr(),
		"--outbound-address", testenv.FreeAddr(), "--agent-address", agent, "--app-probers", string(probers)}, mesh.ProxyControlArgs()...)
	testenv.Start(t, "proxy", args...)
	testenv.WaitHTTP(t, "http://"+agent+"/healthz/ready", http.StatusOK, testenv.StartTimeout)

	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+agent+path, nil)
		req.Header.Set("X-Probe", "kubelet") // the probe's httpHeaders, sent by the kubelet
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(readyz); code != 200 || body != "app ok" {
		t.Errorf("readyz of a healthy app: %d %q", code, body)
	}
	healthy.Store(false)
	if code, body := get(readyz); code != http.StatusServiceUnavailable || body != "app unhealthy\n" {
		t.Errorf("readyz of an unhealthy app: %d %q, want the app's 503", code, body)
	}
	healthy.Store(true)
	if code, _ := get(readyz); code != 200 {
		t.Errorf("readyz after recovery: %d", code)
	}
	if code, _ := get(livez); code != 200 {
		t.Errorf("livez (tcp) with the port open: %d", code)
	}
	tcp.Close()
	if code, _ := get(livez); code != http.StatusInternalServerError {
		t.Errorf("livez (tcp) with the port closed: %d, want 500", code)
	}
	if code, _ := get(startupz); code != 200 {
		t.Errorf("startupz (grpc) serving: %d", code)
	}
	hs.SetServingStatus("app", healthpb.HealthCheckResponse_NOT_SERVING)
	if code, _ := get(startupz); code != http.StatusInternalServerError {
		t.Errorf("startupz (grpc) not serving: %d, want 500", code)
	}
	if code, _ := get("/app-health/other/readyz"); code != http.StatusBadRequest {
		t.Errorf("unknown prober: %d, want 400", code)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func port(ln net.Listener) int {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}
