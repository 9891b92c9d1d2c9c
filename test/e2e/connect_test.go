package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// The sidecar's outbound listener as the app's HTTP(S) forward proxy
// (HTTPS_PROXY=http://<outbound>, curl -x): CONNECT host:port opens a
// tunnel routed as captured TCP to host:port is.

// connectTo sends CONNECT authority to the proxy at addr over a new
// connection. On 200 it returns the tunnel; otherwise the proxy's answer.
func connectTo(addr, authority string) (net.Conn, *http.Response, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		c.Close()
		return nil, resp, nil
	}
	c.SetDeadline(time.Time{})
	return &bufferedConn{Conn: c, r: br}, resp, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// lineThroughConnect opens a tunnel to authority and sends one line to the
// TCP line echo behind it; it returns the echo's first word.
func lineThroughConnect(proxy, authority, line string) (string, error) {
	c, resp, err := connectTo(proxy, authority)
	if err != nil {
		return "", err
	}
	if c == nil {
		return "", fmt.Errorf("CONNECT %s: %s (%s)", authority, resp.Status, resp.Header.Get("X-Sluice-Reason"))
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("CONNECT %s: tunnel read: %w", authority, err)
	}
	if !strings.HasSuffix(answer, line+"\n") {
		return "", fmt.Errorf("echo answered %q to %q", answer, line)
	}
	word, _, _ := strings.Cut(answer, " ")
	return word, nil
}

// viaProxy GETs rawURL with the sidecar as the HTTPS proxy, as an app with
// HTTPS_PROXY set does (Go's transport sends CONNECT host:port, then TLS
// with the host as SNI).
func viaProxy(c *testenv.Client, pool *tls.Config, rawURL string) (string, error) {
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: c.OutboundAddress}), TLSClientConfig: pool}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := hc.Get(rawURL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// taggedTLSServer is a TLS server with a certificate for name that answers
// with tag, so a test can tell which of two servers for one name it reached.
func taggedTLSServer(t *testing.T, ca *testenv.CA, name, tag string) int {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, name)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s sni=%s", tag, r.TLS.ServerName)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// lineServer is a plain TCP line echo answering "<tag> <line>".
func lineServer(t *testing.T, tag string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "%s %s\n", tag, sc.Text())
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

const connectSidecar = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: %s}
---
`

// TestConnectTLS: HTTPS through the sidecar as forward proxy reaches a TLS
// ServiceEntry host and a wildcard ServiceEntry host; a VirtualService tls
// route for the SNI moves the tunnel elsewhere; REGISTRY_ONLY refuses an
// unknown host with 502 and its reason, ALLOW_ANY passes it through.
func TestConnectTLS(t *testing.T) {
	ca := testenv.NewCA(t, "external-ca")
	secure := taggedTLSServer(t, ca, "secure.example.com", "secure")
	rerouted := taggedTLSServer(t, ca, "secure.example.com", "rerouted")
	wild := taggedTLSServer(t, ca, "a.wild.example.com", "wild")
	outside := lineServer(t, "outside")
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 secure.example.com rerouted.internal a.wild.example.com outside.example.org\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := testenv.NewMesh(t, testenv.MeshOptions{ProxyArgs: []string{"--hosts-file", hosts}})
	egress := fmt.Sprintf(connectSidecar, "REGISTRY_ONLY") + fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: default}
spec:
  hosts: [secure.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: secure.example.com, ports: {tls: %d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rerouted, namespace: default}
spec:
  hosts: [rerouted.internal]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: rerouted.internal, ports: {tls: %d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ["*.wild.example.com"]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: %d, name: tls, protocol: TLS}]
`, secure, rerouted, wild)
	m.WriteConfig("egress.yaml", egress)
	c := m.AddClient(testenv.ClientOptions{Name: "app"})
	tlsConf := &tls.Config{RootCAs: ca.Pool}
	expect := func(rawURL, want string) {
		t.Helper()
		m.WaitConverged(func() error {
			got, err := viaProxy(c, tlsConf, rawURL)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s: got %q, want %q", rawURL, got, want)
			}
			return nil
		}, convergeTimeout)
	}
	t.Run("TLS ServiceEntry host", func(t *testing.T) {
		expect("https://secure.example.com/", "secure sni=secure.example.com")
	})
	t.Run("wildcard ServiceEntry host", func(t *testing.T) {
		expect("https://a.wild.example.com:"+strconv.Itoa(wild)+"/", "wild sni=a.wild.example.com")
	})
	t.Run("REGISTRY_ONLY refuses an unknown host with 502", func(t *testing.T) {
		conn, resp, err := connectTo(c.OutboundAddress, "outside.example.org:"+strconv.Itoa(outside))
		if err != nil || conn != nil {
			t.Fatalf("tunnel opened (%v) or failed: %v", conn != nil, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(resp.Header.Get("X-Sluice-Reason"), "block_all") ||
			!strings.Contains(string(body), "CONNECT outside.example.org") {
			t.Errorf("want 502 naming block_all, got %s reason %q body %q", resp.Status, resp.Header.Get("X-Sluice-Reason"), body)
		}
	})
	t.Run("a tls route for the SNI moves the tunnel", func(t *testing.T) {
		m.WriteConfig("vs.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: default}
spec:
  hosts: [secure.example.com]
  tls:
  - match: [{port: 443, sniHosts: [secure.example.com]}]
    route: [{destination: {host: rerouted.internal, port: {number: 443}}}]
`)
		expect("https://secure.example.com/", "rerouted sni=secure.example.com")
	})
	t.Run("ALLOW_ANY passes an unknown host through", func(t *testing.T) {
		m.WriteConfig("egress.yaml", strings.Replace(egress, "REGISTRY_ONLY", "ALLOW_ANY", 1))
		m.WaitConverged(func() error {
			word, err := lineThroughConnect(c.OutboundAddress, "outside.example.org:"+strconv.Itoa(outside), "hi")
			if err == nil && word != "outside" {
				err = fmt.Errorf("answered by %q", word)
			}
			return err
		}, convergeTimeout)
	})
	requireSyncedNoNACK(t, m)
}

// TestConnectTCPSplit: a tunnel to a TCP service follows its mesh tcp
// route's 80/20 split across two versions, by short name and full name.
func TestConnectTCPSplit(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("tcp-echo.yaml", tcpEchoConfig+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: [tcp-echo]
  tcp:
  - route:
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v1}, weight: 80}
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v2}, weight: 20}
`)
	m.AddWorkload(testenv.WorkloadOptions{Service: "tcp-echo", Version: "v1", PortName: "tcp", TCPPrefix: "one"})
	m.AddWorkload(testenv.WorkloadOptions{Service: "tcp-echo", Version: "v2", PortName: "tcp", TCPPrefix: "two"})
	c := m.AddClient(testenv.ClientOptions{Name: "app"})
	// Converged once both versions have answered (each workload's
	// endpoint arrives on its own).
	m.WaitConverged(func() error {
		seen := map[string]bool{}
		for i := 0; i < 40 && len(seen) < 2; i++ {
			word, err := lineThroughConnect(c.OutboundAddress, "tcp-echo:9000", "probe")
			if err != nil {
				return err
			}
			seen[word] = true
		}
		if len(seen) < 2 {
			return fmt.Errorf("only %v answered", seen)
		}
		return nil
	}, convergeTimeout)
	counts := map[string]int{}
	const n = 300
	for i := 0; i < n; i++ {
		authority := "tcp-echo:9000"
		if i%2 == 1 {
			authority = "tcp-echo.default.svc.cluster.local:9000"
		}
		word, err := lineThroughConnect(c.OutboundAddress, authority, fmt.Sprintf("line %d", i))
		if err != nil {
			t.Fatal(err)
		}
		counts[word]++
	}
	t.Logf("split through CONNECT: %v", counts)
	// binomial sd at n=300, p=0.2 is 0.023; allow 4 sd.
	if f := float64(counts["two"]) / n; f < 0.108 || f > 0.292 || counts["one"]+counts["two"] != n {
		t.Errorf("split %v: want two=20%%±9%%", counts)
	}
	t.Run("a port the service does not have is refused under REGISTRY_ONLY", func(t *testing.T) {
		m.WriteConfig("sidecar.yaml", fmt.Sprintf(connectSidecar, "REGISTRY_ONLY"))
		m.WaitConverged(func() error {
			conn, resp, err := connectTo(c.OutboundAddress, "tcp-echo:9001")
			if err != nil {
				return err
			}
			if conn != nil {
				conn.Close()
				return fmt.Errorf("tunnel opened")
			}
			if resp.StatusCode != http.StatusBadGateway {
				return fmt.Errorf("got %s", resp.Status)
			}
			return nil
		}, convergeTimeout)
	})
	requireSyncedNoNACK(t, m)
}

// TestConnectHTTPService: a tunnel to an HTTP service port carries HTTP
// that the sidecar routes with its outbound route table, as captured TCP
// to an HTTP port is on Kubernetes: the VirtualService's http routes apply
// to each request inside the tunnel.
func TestConnectHTTPService(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	service(t, m, "web", map[string]int{"http": 80}, "v1", "v2")
	m.WriteConfig("vs.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: web, subset: v2}}]
    headers: {response: {set: {x-routed: v2-route}}}
  - route: [{destination: {host: web, subset: v1}}]
`)
	c := m.AddClient(testenv.ClientOptions{Name: "app"})
	// ask sends GET path over the tunnel and returns the version that
	// answered and the response's x-routed header.
	ask := func(tunnel net.Conn, br *bufio.Reader, path string) (string, string, error) {
		req, _ := http.NewRequest("GET", "http://web"+path, nil)
		if err := req.Write(tunnel); err != nil {
			return "", "", err
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return "", "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", "", err
		}
		e := testenv.DecodeEcho(body)
		if resp.StatusCode != 200 || e == nil {
			return "", "", fmt.Errorf("GET %s in the tunnel: %s %q", path, resp.Status, body)
		}
		return e.Version, resp.Header.Get("X-Routed"), nil
	}
	m.WaitConverged(func() error {
		tunnel, resp, err := connectTo(c.OutboundAddress, "web:80")
		if err != nil {
			return err
		}
		if tunnel == nil {
			return fmt.Errorf("CONNECT web:80: %s (%s)", resp.Status, resp.Header.Get("X-Sluice-Reason"))
		}
		defer tunnel.Close()
		tunnel.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(tunnel)
		// Two requests on the one tunnel, each routed on its own.
		for _, want := range []struct{ path, version, header string }{{"/v2/x", "v2", "v2-route"}, {"/other", "v1", ""}, {"/v2", "v2", "v2-route"}} {
			v, h, err := ask(tunnel, br, want.path)
			if err != nil {
				return err
			}
			if v != want.version || h != want.header {
				return fmt.Errorf("GET %s in the tunnel: served by %q with x-routed %q, want %q and %q", want.path, v, h, want.version, want.header)
			}
		}
		return nil
	}, convergeTimeout)
	requireSyncedNoNACK(t, m)
}

// TestConnectEgressGateway follows Istio's "egress gateway for HTTPS
// traffic" task with the sidecar as the app's HTTPS proxy: the mesh tls
// route for the SNI sends the tunnel to the egress gateway, whose TLS
// PASSTHROUGH server routes it by SNI to the external host; the TLS
// session is end to end between the app and the external server.
func TestConnectEgressGateway(t *testing.T) {
	const name = "secure.example.com"
	m, port, caFile := egressMesh(t, name, "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	gwPort := testenv.FreePort()
	gw := m.AddGateway(testenv.GatewayOptions{Name: "istio-egressgateway", Labels: map[string]string{"istio": "egressgateway"}})
	m.WriteConfig("egress.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: default}
spec:
  hosts: [%[1]s]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: %[1]s, ports: {tls: %[2]d}}]
---
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports: [{name: tls, port: %[3]d}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: istio-egressgateway, namespace: istio-system}
spec: {address: 127.0.0.1, labels: {istio: egressgateway}, ports: {tls: %[3]d}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: %[3]d, name: tls, protocol: TLS}
    hosts: [%[1]s]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: via-egress, namespace: default}
spec:
  hosts: [%[1]s]
  gateways: [mesh, istio-egressgateway]
  tls:
  - match: [{gateways: [mesh], port: 443, sniHosts: [%[1]s]}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: %[3]d}}}]
  - match: [{gateways: [istio-egressgateway], port: %[3]d, sniHosts: [%[1]s]}]
    route: [{destination: {host: %[1]s, port: {number: 443}}}]
`, name, port, gwPort))
	c := m.AddClient(testenv.ClientOptions{Name: "app"})
	m.WaitConverged(func() error {
		got, err := viaProxy(c, &tls.Config{RootCAs: roots}, "https://"+name+"/")
		if err != nil {
			return err
		}
		if want := "external " + name + " tls=true sni=" + name; !strings.HasPrefix(got, want) {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	}, convergeTimeout)
	if n := statValue(t, "http://"+gw.AdminAddress+"/stats", "cluster.outbound|443||"+name+".upstream_cx_total"); n == 0 {
		t.Error("the tunnel did not pass the egress gateway")
	}
	if n := statValue(t, "http://"+c.AdminAddress+"/stats", "cluster.outbound|443||"+name+".upstream_cx_total"); n != 0 {
		t.Errorf("the sidecar connected to the external host itself %d times", n)
	}
	requireSyncedNoNACK(t, m)
}
