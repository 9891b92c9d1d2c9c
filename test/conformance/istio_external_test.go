package conformance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/echo"
)

// Egress checks of the istio-tasks group (request.url): backends.yaml's
// external_hosts are stood in for by servers in the test process, each on
// a loopback IP of its own and the host's port, which every proxy of the
// case resolves the host name to (sluice proxy --hosts-file). The case's
// ServiceEntries have DNS resolution and no endpoints, so the proxies
// connect to host:port as they would to the real host.
//
// An http:// URL goes through the client's sidecar as an HTTP proxy
// request (absolute form, as curl with the sidecar capturing its traffic);
// an https:// URL goes as TLS, with the URL's host as SNI, to the client
// sidecar's outbound TCP listener for the URL's port (the client's own
// loopback IP, --outbound-tcp-ip), trusting the test CA that signed the
// stand-ins' certificates, then as an HTTP request over that connection.

// ExternalHost is an entry of backends.yaml's external_hosts: a server the
// mesh must treat as outside the mesh.
type ExternalHost struct {
	Host      string `json:"host"`
	Port      int    `json:"port"`
	Protocol  string `json:"protocol"`
	Behaviour string `json:"behaviour"`
}

// httpbinMaxDelay is the longest /delay/N httpbin waits (its own cap).
const httpbinMaxDelay = 10 * time.Second

// externalModel says how an external host is stood in for, from its
// described behaviour: httpbin's (/delay/N answers after N seconds; any
// other request, /headers among them, gets the echo answer, which shows
// the request as it arrived), or a server answering 200 (the echo). why
// is set when the behaviour or protocol is not one this runner can model.
func externalModel(h ExternalHost) (httpbin bool, why string) {
	switch strings.ToUpper(h.Protocol) {
	case "HTTP", "HTTPS":
	default:
		return false, fmt.Sprintf("external host %s: protocol %q: only HTTP and HTTPS stand-ins are run", h.Host, h.Protocol)
	}
	b := strings.ToLower(strings.TrimSpace(h.Behaviour))
	switch {
	case strings.HasPrefix(b, "httpbin"):
		return true, ""
	case strings.Contains(b, "answering http 200"):
		return false, ""
	}
	return false, fmt.Sprintf("external host %s: behaviour %q is not one this runner can model", h.Host, h.Behaviour)
}

func (h ExternalHost) tls() bool { return strings.EqualFold(h.Protocol, "HTTPS") }

// urlTarget is what request.url names: its scheme, host and port.
func urlTarget(raw string) (u *url.URL, port int, err error) {
	u, err = url.Parse(raw)
	if err != nil {
		return nil, 0, err
	}
	if u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, 0, fmt.Errorf("not an absolute http:// or https:// URL")
	}
	port = 80
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, 0, err
		}
	}
	return u, port, nil
}

// externalHost is the entry of external_hosts for host:port, or nil.
func (b *Backends) externalHost(host string, port int) *ExternalHost {
	for i := range b.ExternalHosts {
		if h := &b.ExternalHosts[i]; strings.EqualFold(h.Host, host) && h.Port == port {
			return h
		}
	}
	return nil
}

// urlUnsupported says why ch's request.url (or its connection
// expectations) cannot be run, or "".
func (d *istioCase) urlUnsupported(ch *Check) string {
	e := ch.Expect
	r := ch.Request
	if r.URL == "" {
		// Security cases send plain requests whose failure to connect
		// is classified as curl's (classifyConnError).
		if (e.ConnectionError || e.ClientExitCode != 0) && !d.pods {
			return "expect.connection_error/client_exit_code without request.url: only a TLS client of request.url can fail to connect here"
		}
		return ""
	}
	switch {
	case ch.Via.MeshClient == nil:
		return "request.url: only sent from a mesh client"
	case r.Host != nil || r.Path != "" || r.Port != 0 || r.TCPSend != nil:
		return "request.url with request.host, path, port or tcp_send: which one to send is ambiguous"
	case ch.Load != nil:
		return "request.url on a load run is not supported"
	}
	u, port, err := urlTarget(r.URL)
	if err != nil {
		return fmt.Sprintf("request.url %q: %v", r.URL, err)
	}
	h := d.Backends.externalHost(u.Hostname(), port)
	if h == nil {
		return fmt.Sprintf("request.url %s: backends.yaml external_hosts has no %s port %d to stand in for it", r.URL, u.Hostname(), port)
	}
	if h.tls() != (u.Scheme == "https") {
		return fmt.Sprintf("request.url %s: external host %s:%d speaks %s", r.URL, h.Host, h.Port, h.Protocol)
	}
	if _, why := externalModel(*h); why != "" {
		return "request.url " + r.URL + ": " + why
	}
	if (e.ConnectionError || e.ClientExitCode != 0) && u.Scheme != "https" {
		return "expect.connection_error with an http:// URL: the sidecar itself answers HTTP, so only a TLS connection can fail"
	}
	// Every stand-in of the case, and the client sidecar's listener for
	// the URL's port, listen on these ports.
	ports := []int{port}
	for _, x := range d.Backends.ExternalHosts {
		ports = append(ports, x.Port)
	}
	for _, p := range ports {
		if err := bindProbe(p); err != nil {
			return fmt.Sprintf("request.url: the case's stand-ins for external hosts and the client sidecar's listener listen on the hosts' "+
				"own ports, and this process may not bind port %d: %v (run as root or with CAP_NET_BIND_SERVICE)", p, err)
		}
	}
	return ""
}

var bindProbes sync.Map // port -> error (nil: bindable)

// bindProbe tells whether this process may listen on port at a loopback
// address: only a permission error counts (a port someone else holds on
// that address says nothing about the ones the stand-ins will get).
func bindProbe(port int) error {
	if v, ok := bindProbes.Load(port); ok {
		err, _ := v.(error)
		return err
	}
	var result error
	ln, err := net.Listen("tcp", net.JoinHostPort(randomLoopback(254), strconv.Itoa(port)))
	if err == nil {
		ln.Close()
	} else if errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission) {
		result = err
	}
	bindProbes.Store(port, result)
	return result
}

// randomLoopback is 127.x.y.last in a random /24 of 127.100.0.0-127.199.255.0,
// away from the 127.0.0.0/16 other tests use.
func randomLoopback(last int) string {
	return fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), rand.IntN(256), last)
}

// externals are a case's running stand-ins for its external hosts.
type externals struct {
	ca *testenv.CA
	// block is the loopback /24 they listen in ("127.x.y."): host i at
	// .(10+i), client j's outbound TCP listeners at .(1+j).
	block     string
	hostsFile string
	// tls is set when some external host speaks HTTPS: the clients then
	// need outbound TCP listeners to reach it.
	tls bool
}

// clientIP is the loopback IP of the j-th client's outbound TCP listeners.
func (x *externals) clientIP(j int) string { return x.block + strconv.Itoa(1+j) }

// startExternals starts a stand-in for every external host this runner
// can model, on a free loopback /24, and writes the hosts file naming
// them. It returns nil when their ports cannot be bound for lack of
// privilege (the checks that need them are skipped for that reason).
func startExternals(t *testing.T, hosts []ExternalHost) *externals {
	t.Helper()
	for _, h := range hosts {
		if bindProbe(h.Port) != nil {
			return nil
		}
	}
	x := &externals{ca: testenv.NewCA(t, "external-hosts-ca")}
	for attempt := 1; ; attempt++ {
		x.block = strings.TrimSuffix(randomLoopback(0), "0")
		lines, closers, err := x.listen(t, hosts)
		if err == nil {
			x.hostsFile = filepath.Join(t.TempDir(), "hosts")
			if err := os.WriteFile(x.hostsFile, []byte(strings.Join(lines, "")), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				for _, c := range closers {
					c()
				}
			})
			return x
		}
		for _, c := range closers {
			c()
		}
		if attempt == 20 || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("stand-ins for external hosts: %v", err)
		}
	}
}

// listen starts the stand-ins in x.block and returns the hosts file lines
// naming them and how to stop them.
func (x *externals) listen(t *testing.T, hosts []ExternalHost) (lines []string, closers []func(), err error) {
	for i, h := range hosts {
		httpbin, why := externalModel(h)
		if why != "" {
			t.Logf("not standing in for external host %s: %s", h.Host, why)
			continue
		}
		ip := x.block + strconv.Itoa(10+i)
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(h.Port)))
		if err != nil {
			return nil, closers, fmt.Errorf("%s: %w", h.Host, err)
		}
		if h.tls() {
			x.tls = true
			certPEM, keyPEM := x.ca.Issue(t, h.Host)
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				ln.Close()
				return nil, closers, err
			}
			ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair}})
		}
		srv := &http.Server{Handler: externalHandler(h, httpbin), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		closers = append(closers, func() { srv.Close() })
		lines = append(lines, ip+" "+h.Host+"\n")
	}
	return lines, closers, nil
}

// externalHandler serves an external host: the echo answer (identity: the
// host's name), and for httpbin also /delay/N, answered after N seconds
// (at most httpbinMaxDelay, httpbin's cap) unless the caller gives up.
func externalHandler(h ExternalHost, httpbin bool) http.Handler {
	eh := echo.New(echo.Options{Service: h.Host, Pod: h.Host}).Handler()
	if !httpbin {
		return eh
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, ok := strings.CutPrefix(r.URL.Path, "/delay/"); ok {
			if secs, err := strconv.ParseFloat(n, 64); err == nil && secs > 0 {
				d := min(time.Duration(secs*float64(time.Second)), httpbinMaxDelay)
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					return
				}
			}
		}
		eh.ServeHTTP(w, r)
	})
}

// sendURL sends ch's request.url from its client: http:// through the
// sidecar as an HTTP proxy, https:// as TLS to the sidecar's outbound TCP
// listener for the URL's port.
func (e *istioEnv) sendURL(ch *Check) (*testenv.Response, error) {
	c, err := e.client(ch)
	if err != nil {
		return nil, err
	}
	u, port, err := urlTarget(ch.Request.URL)
	if err != nil {
		return nil, err
	}
	method := ch.Request.methodOrGET()
	if u.Scheme == "http" {
		req, err := http.NewRequest(method, u.String(), nil)
		if err != nil {
			return nil, err
		}
		for k, v := range ch.Request.Headers {
			req.Header.Set(k, v)
		}
		return testenv.Send(e.proxyClients[c], req)
	}
	ip := e.tcpIPs[c]
	if e.ext == nil || ip == "" {
		return nil, fmt.Errorf("client %s/%s has no outbound TCP listeners to send %s to", c.Namespace, c.Name, u)
	}
	return e.sendTLS(net.JoinHostPort(ip, strconv.Itoa(port)), u, method, ch.Request.Headers)
}

// tlsHandshakeTimeout bounds connecting and the TLS handshake.
const tlsHandshakeTimeout = 10 * time.Second

// sendTLS opens TLS to addr with u's host as SNI, trusting the stand-ins'
// CA, and sends one request over it. A failure to connect or to shake
// hands is a *connectError with curl's exit code for it. Latency counts
// from the connect, as curl's total time does.
func (e *istioEnv) sendTLS(addr string, u *url.URL, method string, headers map[string]string) (*testenv.Response, error) {
	start := time.Now()
	raw, err := net.DialTimeout("tcp", addr, tlsHandshakeTimeout)
	if err != nil {
		return nil, &connectError{code: curlConnectFailed, err: err}
	}
	conn := tls.Client(raw, &tls.Config{ServerName: u.Hostname(), RootCAs: e.ext.ca.Pool, NextProtos: []string{"http/1.1"}})
	ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
	err = conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		raw.Close()
		return nil, &connectError{code: tlsFailureCode(err), err: fmt.Errorf("TLS to %s (SNI %s): %w", addr, u.Hostname(), err)}
	}
	var once sync.Once
	tr := &http.Transport{DisableKeepAlives: true, DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
		var c net.Conn
		once.Do(func() { c = conn })
		if c == nil {
			return nil, errors.New("the connection to the sidecar was used already")
		}
		return c, nil
	}}
	defer tr.CloseIdleConnections()
	defer conn.Close()
	hc := &http.Client{Transport: tr, Timeout: testenv.RequestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest(method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	r, err := testenv.Send(hc, req)
	if r != nil {
		r.Latency = time.Since(start)
	}
	return r, err
}

// tlsFailureCode is curl's exit code for a failed handshake: 60 when the
// server's certificate was not trusted, 28 on a timeout, else 35 (the
// peer closed or refused the handshake, as a proxy without a filter chain
// for the server name does).
func tlsFailureCode(err error) int {
	var cv *tls.CertificateVerificationError
	var ne net.Error
	switch {
	case errors.As(err, &cv):
		return curlPeerCert
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return curlTimeout
	}
	return curlTLSConnect
}
