package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
)

// TestGatewayAPI drives a Kubernetes Gateway API Gateway through a router
// proxy started as users start one: an HTTP listener (HTTPRoute with a
// segment-wise PathPrefix, a response header, a redirect), an HTTPS
// listener terminating TLS with a certificate from a Secret (real TLS
// client), a TCP listener (TCPRoute) and a TLS passthrough listener
// (TLSRoute, routed by SNI to a backend terminating TLS itself). A router
// with the same label in another namespace must not serve the Gateway.
// The status is read from /debug/gatewayapi and `sluice status`, and a
// live edit adding a route to a missing backend shows as 500 and as
// BackendNotFound.
func TestGatewayAPI(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	service(t, m, "web", map[string]int{"http": 8080})
	m.WriteConfig("tcp-echo.yaml", testenv.ServiceYAML("tcp-echo", "default", map[string]string{"app": "tcp-echo"}, map[string]int{"tcp": 9000}))
	m.AddWorkload(testenv.WorkloadOptions{Service: "tcp-echo", PortName: "tcp", TCPPrefix: "echoed"})

	ca := testenv.NewCA(t, "gateway-api-ca")
	cert, key := ca.Issue(t, "web.example.com")
	m.WriteConfig("secret.yaml", testenv.TLSSecretYAML("web-cert", "default", cert, key, nil))

	// A backend terminating TLS itself, for passthrough.
	backendCert, backendKey := ca.Issue(t, "alpha.example.com")
	pair, err := tls.X509KeyPair(backendCert, backendKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "alpha over its own TLS") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	m.WriteConfig("svc-alpha.yaml", testenv.ServiceYAML("alpha", "default", map[string]string{"app": "alpha"}, map[string]int{"tls": 443}))
	m.AddWorkload(testenv.WorkloadOptions{Service: "alpha", PortName: "tls", AppAddress: ln.Addr().String()})

	httpPort, httpsPort, tcpPort, tlsPort := testenv.FreePort(), testenv.FreePort(), testenv.FreePort(), testenv.FreePort()
	m.WriteConfig("gateway.yaml", fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sluice}
spec: {controllerName: sluice.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, port: %d, protocol: HTTP}
  - name: https
    port: %d
    protocol: HTTPS
    hostname: "*.example.com"
    tls: {certificateRefs: [{name: web-cert}]}
  - {name: tcp, port: %d, protocol: TCP}
  - {name: tls, port: %d, protocol: TLS, tls: {mode: Passthrough}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: http}, {name: edge, sectionName: https}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /app}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: X-Route, value: web}]}
    backendRefs: [{name: web, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /secure}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, port: %d}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: tcp}]
  rules: [{backendRefs: [{name: tcp-echo, port: 9000}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: alpha, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: tls}]
  hostnames: [alpha.example.com]
  rules: [{backendRefs: [{name: alpha, port: 443}]}]
`, httpPort, httpsPort, tcpPort, tlsPort, httpsPort))

	gw := m.AddGateway(testenv.GatewayOptions{Name: "edge-router", Namespace: "default",
		Labels: map[string]string{gatewayapi.GatewayNameLabel: "edge"}})
	// The same label in another namespace: not this Gateway's router. It
	// would fail to bind if it served the listeners; with an offset, its
	// ports would show as open.
	const otherOffset = 3
	other := m.AddGateway(testenv.GatewayOptions{Name: "edge-router", Namespace: "elsewhere",
		Labels: map[string]string{gatewayapi.GatewayNameLabel: "edge"}, PortOffset: otherOffset})

	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(hc *http.Client, url, host string) (*testenv.Response, error) {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			return nil, err
		}
		req.Host = host
		return testenv.Send(hc, req)
	}

	t.Run("HTTP listener: segment-wise PathPrefix, response header, redirect", func(t *testing.T) {
		m.WaitConverged(func() error {
			r, err := send(plain, "http://"+gw.Address(httpPort)+"/app/page", "anything.test")
			if err != nil {
				return err
			}
			if err := servedBy(r, "web", ""); err != nil {
				return err
			}
			if r.Header.Get("X-Route") != "web" {
				return fmt.Errorf("response header missing: %s", r)
			}
			return nil
		}, convergeTimeout)
		r, err := send(plain, "http://"+gw.Address(httpPort)+"/app", "anything.test")
		if err != nil || servedBy(r, "web", "") != nil {
			t.Errorf("/app itself must match PathPrefix /app: %v %v", r, err)
		}
		r, err = send(plain, "http://"+gw.Address(httpPort)+"/application", "anything.test")
		if err != nil || r.Status != 404 {
			t.Errorf("/application must not match PathPrefix /app (whole segments only), want 404: %v %v", r, err)
		}
		r, err = send(plain, "http://"+gw.Address(httpPort)+"/secure/x?y=1", "shop.example.com")
		if err != nil {
			t.Fatal(err)
		}
		want := "https://shop.example.com:" + strconv.Itoa(httpsPort) + "/secure/x?y=1"
		if r.Status != 302 || r.Header.Get("Location") != want {
			t.Errorf("redirect: %d %q, want 302 %q", r.Status, r.Header.Get("Location"), want)
		}
	})

	t.Run("HTTPS listener terminates TLS with the Secret's certificate", func(t *testing.T) {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{ServerName: "web.example.com", RootCAs: ca.Pool}}}
		m.WaitConverged(func() error {
			r, err := send(hc, "https://"+gw.Address(httpsPort)+"/app/x", "web.example.com")
			if err != nil {
				return err
			}
			return servedBy(r, "web", "")
		}, convergeTimeout)
		r, err := send(hc, "https://"+gw.Address(httpsPort)+"/app/x", "web.example.com")
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Echo.Request.Headers["X-Forwarded-Proto"]; len(got) == 0 || got[0] != "https" {
			t.Errorf("backend saw X-Forwarded-Proto %v, want https", got)
		}
	})

	t.Run("TCP listener proxies TCPRoute connections", func(t *testing.T) {
		m.WaitConverged(func() error {
			word, err := tcpLine(gw.Address(tcpPort), "hello")
			if err != nil {
				return err
			}
			if word != "echoed" {
				return fmt.Errorf("answer from %q, want the tcp-echo backend", word)
			}
			return nil
		}, convergeTimeout)
	})

	t.Run("TLS passthrough listener routes TLSRoute by SNI", func(t *testing.T) {
		get := func(sni string) (string, error) {
			hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: sni, RootCAs: ca.Pool}}}
			resp, err := hc.Get("https://" + gw.Address(tlsPort) + "/")
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			return string(b), err
		}
		m.WaitConverged(func() error {
			body, err := get("alpha.example.com")
			if err != nil {
				return err
			}
			if body != "alpha over its own TLS" {
				return fmt.Errorf("got %q", body)
			}
			return nil
		}, convergeTimeout)
		if _, err := get("beta.example.com"); err == nil {
			t.Error("an SNI the TLSRoute does not name must not be served")
		}
	})

	t.Run("a router in another namespace does not serve the Gateway", func(t *testing.T) {
		for _, p := range []int{httpPort, httpsPort, tcpPort, tlsPort} {
			if c, err := net.DialTimeout("tcp", other.Address(p), time.Second); err == nil {
				c.Close()
				t.Errorf("router in namespace elsewhere listens on Gateway port %d (+%d)", p, otherOffset)
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		requireSyncedNoNACK(t, m)
		var st gatewayapi.Status
		if err := getJSONURL(m.URL("/debug/gatewayapi"), &st); err != nil {
			t.Fatal(err)
		}
		if p := st.Problems(); len(p) > 0 {
			t.Errorf("conditions not as they should be:\n  %s", strings.Join(p, "\n  "))
		}
		g := st.Gateway("default", "edge")
		if g == nil {
			t.Fatalf("no status for Gateway default/edge: %+v", st)
		}
		for name, want := range map[string]int32{"http": 1, "https": 1, "tcp": 1, "tls": 1} {
			if l := g.Listener(name); l == nil || l.AttachedRoutes != want {
				t.Errorf("listener %s: %+v, want %d attached route(s)", name, l, want)
			}
		}
		out, err := exec.Command(testenv.Binary(t), "status", "--address", m.HTTPAddress).CombinedOutput()
		if err != nil {
			t.Errorf("sluice status: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "Gateway default/edge: Accepted=True(Accepted) Programmed=True(Programmed)") {
			t.Errorf("sluice status output lacks the Gateway's conditions:\n%s", out)
		}
	})

	t.Run("live edit: a route to a missing Service answers 500 and reports BackendNotFound", func(t *testing.T) {
		m.WriteConfig("broken.yaml", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: http}]
  rules:
  - matches: [{path: {type: Exact, value: /gone}}]
    backendRefs: [{name: nowhere, port: 80}]
  - matches: [{path: {type: Exact, value: /half}}]
    backendRefs: [{name: web, port: 8080}, {name: nowhere, port: 80}]
`)
		m.WaitConverged(func() error {
			r, err := send(plain, "http://"+gw.Address(httpPort)+"/gone", "anything.test")
			if err != nil {
				return err
			}
			if r.Status != 500 {
				return fmt.Errorf("want 500, got %s", r)
			}
			return nil
		}, convergeTimeout)
		// Equal weights, one backend missing: that half is answered 500.
		counts := map[int]int{}
		for i := 0; i < 200; i++ {
			r, err := send(plain, "http://"+gw.Address(httpPort)+"/half", "anything.test")
			if err != nil {
				t.Fatal(err)
			}
			if r.Status == 200 && servedBy(r, "web", "") != nil {
				t.Fatalf("a 200 not from web: %s", r)
			}
			counts[r.Status]++
		}
		if counts[200]+counts[500] != 200 || counts[500] < 60 || counts[200] < 60 {
			t.Errorf("want about half of 200 requests answered 500 and half served, got %v", counts)
		}
		out, err := exec.Command(testenv.Binary(t), "status", "--address", m.HTTPAddress).CombinedOutput()
		if err == nil {
			t.Errorf("sluice status must exit non-zero with a route not resolved:\n%s", out)
		}
		if !strings.Contains(string(out), "ResolvedRefs=False(BackendNotFound)") {
			t.Errorf("sluice status output lacks BackendNotFound:\n%s", out)
		}
	})
}

func getJSONURL(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
