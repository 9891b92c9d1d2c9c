package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/kube/inject"
)

// The agent port (istio-agent's status server, port 15020 on
// Kubernetes): /healthz/ready (the proxy has its config) and the app
// probes the injector rewrote to /app-health/<container>/<kind>, each
// run against the app as istio-agent runs it
// (pilot/cmd/pilot-agent/status/server.go handleAppProbe*) and
// answered with the result.

// maxProbeBody bounds the app's probe body echoed back (as Istio's
// maxRespBodyLength, 10 KiB).
const maxProbeBody = 10 << 10

// appProbe is one original probe, compiled once at start.
type appProbe struct {
	prober  *inject.Prober
	timeout time.Duration
	client  *http.Client // HTTP probes
	target  string       // host:port at the workload address
}

// parseAppProbers reads ISTIO_KUBE_APP_PROBERS: every path must be an
// agent path, every probe exactly one HTTP, TCP or gRPC action with a
// numeric port (the injector resolved named ports).
func parseAppProbers(js, host string) (map[string]*appProbe, error) {
	out := map[string]*appProbe{}
	if js == "" {
		return out, nil
	}
	var probers inject.AppProbers
	if err := json.Unmarshal([]byte(js), &probers); err != nil {
		return nil, fmt.Errorf("app probers: %w", err)
	}
	for path, pr := range probers {
		if !strings.HasPrefix(path, "/app-health/") && !strings.HasPrefix(path, "/app-lifecycle/") {
			return nil, fmt.Errorf("app prober %q: not an /app-health/ or /app-lifecycle/ path", path)
		}
		ap, err := compileProbe(pr, host)
		if err != nil {
			return nil, fmt.Errorf("app prober %q: %w", path, err)
		}
		out[path] = ap
	}
	return out, nil
}

func compileProbe(pr *inject.Prober, host string) (*appProbe, error) {
	if pr == nil {
		return nil, errors.New("empty")
	}
	ap := &appProbe{prober: pr, timeout: time.Duration(pr.TimeoutSeconds) * time.Second}
	if ap.timeout <= 0 {
		ap.timeout = time.Second // the kubelet's default timeoutSeconds
	}
	var port int
	n := 0
	if pr.HTTPGet != nil {
		n++
		port = pr.HTTPGet.Port.IntValue()
		if pr.HTTPGet.Host != "" {
			host = pr.HTTPGet.Host
		}
		ap.client = probeClient(ap.timeout)
	}
	if pr.TCPSocket != nil {
		n++
		port = pr.TCPSocket.Port.IntValue()
		if pr.TCPSocket.Host != "" {
			host = pr.TCPSocket.Host
		}
	}
	if pr.GRPC != nil {
		n++
		port = int(pr.GRPC.Port)
	}
	if n != 1 {
		return nil, fmt.Errorf("want exactly one of httpGet, tcpSocket, grpc; got %d", n)
	}
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("port %d: want a port number", port)
	}
	ap.target = net.JoinHostPort(host, strconv.Itoa(port))
	return ap, nil
}

// probeClient is the kubelet's prober client: no certificate check
// (kubelet skips it for HTTPS probes), no keep-alive, redirects followed
// on the same host up to 10 times and otherwise taken as success.
func probeClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the kubelet's probes
			DisableKeepAlives: true,
			Proxy:             nil,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("probe: stopped after 10 redirects")
			}
			if req.URL.Host != via[0].URL.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// agentHandler serves the agent port.
func (p *Proxy) agentHandler(probes map[string]*appProbe) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz/ready", func(w http.ResponseWriter, r *http.Request) {
		if rt := p.rt.Load(); !rt.Ready() {
			http.Error(w, "proxy not ready: no config yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	app := func(w http.ResponseWriter, r *http.Request) {
		ap, ok := probes[r.URL.Path]
		if !ok {
			http.Error(w, fmt.Sprintf("no app prober for %s", r.URL.Path), http.StatusBadRequest)
			return
		}
		switch {
		case ap.prober.HTTPGet != nil:
			ap.probeHTTP(w, r)
		case ap.prober.TCPSocket != nil:
			ap.answer(w, ap.probeTCP(r.Context()))
		default:
			ap.answer(w, ap.probeGRPC(r.Context(), r.UserAgent()))
		}
	}
	mux.HandleFunc("/app-health/", app)
	mux.HandleFunc("/app-lifecycle/", app)
	return mux
}

func (ap *appProbe) answer(w http.ResponseWriter, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// probeHTTP is istio-agent's handleAppProbeHTTPGet: the kubelet's
// request headers (the probe's httpHeaders, Host included) go to the
// app; its status comes back (a redirect not followed is 200), with at
// most maxProbeBody of its body.
func (ap *appProbe) probeHTTP(w http.ResponseWriter, r *http.Request) {
	g := ap.prober.HTTPGet
	scheme, path := "http", g.Path
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, scheme+"://"+ap.target+path, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for name, values := range r.Header {
		req.Header[name] = append([]string(nil), values...)
	}
	if h := r.Header.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := ap.client.Do(req)
	if err != nil {
		http.Error(w, "app probe: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, maxProbeBody))
}

func (ap *appProbe) probeTCP(ctx context.Context) error {
	d := net.Dialer{Timeout: ap.timeout}
	c, err := d.DialContext(ctx, "tcp", ap.target)
	if err != nil {
		return fmt.Errorf("app probe: %w", err)
	}
	return c.Close()
}

// probeGRPC is the kubelet's gRPC probe (grpc.health.v1 Check of the
// probe's service), as istio-agent's handleAppProbeGRPC.
func (ap *appProbe) probeGRPC(ctx context.Context, userAgent string) error {
	ctx, cancel := context.WithTimeout(ctx, ap.timeout)
	defer cancel()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if userAgent != "" {
		opts = append(opts, grpc.WithUserAgent(userAgent))
	}
	conn, err := grpc.NewClient(ap.target, opts...)
	if err != nil {
		return fmt.Errorf("app probe: %w", err)
	}
	defer conn.Close()
	svc := ""
	if ap.prober.GRPC.Service != nil {
		svc = *ap.prober.GRPC.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
	if err != nil {
		return fmt.Errorf("app probe: %w", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("app probe: %s", resp.GetStatus())
	}
	return nil
}

// serveAgent listens on the agent address; stop closes it.
func (p *Proxy) serveAgent(addr, probers string) (bound string, stop func(), err error) {
	host := DefaultWorkloadIP
	if ips := p.opts.Identity.IPs; len(ips) > 0 && ips[0] != "" {
		host = ips[0]
	}
	probes, err := parseAppProbers(probers, host)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: p.agentHandler(probes), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}
