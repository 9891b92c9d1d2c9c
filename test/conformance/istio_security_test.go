package conformance

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// The istio-security group: Istio's security tasks (mTLS, authentication
// and authorization policies) on the istio-tasks runner, with what those
// tasks add to their deployments:
//
//   - every workload is a pod of its own: a loopback address of its own
//     (testenv.LoopbackIP) serving its real container ports, so a
//     PeerAuthentication's portLevelMtls and an AuthorizationPolicy's ports
//     name what they name on Kubernetes, and its sidecar's connections
//     leave from that address (source.ip, ipBlocks);
//   - service accounts (the SPIFFE identities principals name);
//   - workloads and clients without a sidecar (the tasks' "legacy"
//     namespace): such a client sends plain HTTP straight to the server
//     pod, as curl in a pod without injection does;
//   - a mesh client may be any workload (productpage-v1 calling details);
//   - TCP exchanges from mesh clients (authz-tcp), through the client
//     sidecar's outbound TCP listeners;
//   - $CLIENT_IP in the config is the address the check's ingress requests
//     come from.

// TestIstioSecurity runs the istio-security group.
func TestIstioSecurity(t *testing.T) { runGroup(t, istioTasks{security: true}) }

// podHostRE is a host naming a pod's address: {POD_IP_OF:<ns>/<workload>}.
var podHostRE = regexp.MustCompile(`^\{POD_IP_OF:([^/}]+)/([^}]+)\}$`)

// hasSidecar reports whether a backends.yaml workload has a sidecar: unless
// it says sidecar: false.
func hasSidecar(b *Backends, sidecar *bool) bool {
	if sidecar != nil {
		return *sidecar
	}
	return true // server_sidecars all or naming workloads: all have one
}

// podOptions makes a security case's workload replica a pod: its own IP,
// its container ports (each mapped to the Service ports whose targetPort
// it is), its service account, and no sidecar when the data says so.
func podOptions(o *testenv.WorkloadOptions, b *Backends, s *BackendSvc, w *BackendWorkload) {
	o.IP = testenv.LoopbackIP()
	o.ServiceAccount = w.ServiceAccount
	o.NoSidecar = !hasSidecar(b, w.Sidecar)
	ports := w.ContainerPorts
	if len(ports) == 0 && w.ContainerPort != 0 {
		ports = []int{w.ContainerPort}
	}
	if len(ports) == 0 {
		return
	}
	names := func(cp int) []string {
		var out []string
		for _, p := range s.Ports {
			if servicePortTarget(p) == cp {
				if n, _ := p["name"].(string); n != "" {
					out = append(out, n)
				}
			}
		}
		return out
	}
	first := names(ports[0])
	o.InboundPort = ports[0]
	o.PortName, o.PortNames = "", nil
	if len(first) > 0 {
		o.PortName, o.PortNames = first[0], first[1:]
	}
	o.Ports = nil
	for _, cp := range ports[1:] {
		o.Ports = append(o.Ports, testenv.WorkloadPort{Names: names(cp), TCPPrefix: o.TCPPrefix, InboundPort: cp})
	}
}

// servicePortTarget is the container port a Service port sends to: its
// targetPort when it is a number, else its port.
func servicePortTarget(p map[string]any) int {
	if tp, ok := p["targetPort"].(float64); ok {
		return int(tp)
	}
	if n, ok := p["port"].(float64); ok {
		return int(n)
	}
	return 0
}

// sender is where a mesh client's requests leave from: its sidecar, or,
// for a client without one, its own address straight to the server.
type sender struct {
	client *testenv.Client // nil for a client without a sidecar
	ip     string          // the client's address
	tcpIP  string          // its sidecar's outbound TCP listener IP
	direct *http.Client    // plain HTTP from ip (no sidecar)
}

// directHTTP is an HTTP client whose connections leave from ip and are
// never reused, as one curl per check.
func directHTTP(ip string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{
		Timeout:       testenv.RequestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
	}
}

// senderFor finds the client a check's mesh_client names: a backends.yaml
// client, or any workload (its first replica's sidecar).
func (e *istioEnv) senderFor(ch *Check) (*sender, error) {
	mc := ch.Via.MeshClient
	if mc == nil {
		return nil, errors.New("the check has no via.mesh_client")
	}
	key := mc.Namespace + "/" + mc.Workload
	if s := e.senders[key]; s != nil {
		return s, nil
	}
	if ws := e.workloads[key]; len(ws) > 0 && ws[0].w.Sidecar != nil {
		w := ws[0].w
		s := &sender{client: &testenv.Client{Name: w.Name, Namespace: w.Namespace, OutboundAddress: w.OutboundAddress,
			AdminAddress: w.AdminAddress, Sidecar: w.Sidecar, HTTP: directHTTP("127.0.0.1")}}
		e.senders[key] = s
		return s, nil
	}
	return nil, fmt.Errorf("backends.yaml has no client or workload with a sidecar named %s", key)
}

// sendSecurity sends a mesh client's check in a security case.
func (e *istioEnv) sendSecurity(ch *Check) (*testenv.Response, error) {
	s, err := e.senderFor(ch)
	if err != nil {
		return nil, err
	}
	if ch.Request.TCPSend != nil {
		addr, err := e.tcpTarget(ch, s)
		if err != nil {
			return nil, err
		}
		return tcpExchangeFrom(s.ip, addr, *ch.Request.TCPSend, ch.Request.HoldOpen)
	}
	method, path := ch.Request.methodOrGET(), ch.Request.pathOrRoot()
	if s.client != nil {
		return s.client.Request(method, hostHeader(ch), path, ch.Request.Headers, nil)
	}
	addr, err := e.podAddress(ch, s)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	req.Host = hostHeader(ch)
	for k, v := range ch.Request.Headers {
		req.Header.Set(k, v)
	}
	r, err := testenv.Send(s.direct, req)
	if err != nil {
		return nil, classifyConnError(err)
	}
	return r, nil
}

// tcpTarget is where a TCP check connects: a pod's address for
// {POD_IP_OF:...} or a client without a sidecar, else the client
// sidecar's outbound TCP listener for the service port.
func (e *istioEnv) tcpTarget(ch *Check, s *sender) (string, error) {
	if ch.Request.Host != nil && podHostRE.MatchString(*ch.Request.Host) || s.client == nil {
		return e.podAddress(ch, s)
	}
	if s.tcpIP == "" {
		return "", errors.New("the client's sidecar has no outbound TCP listeners")
	}
	return net.JoinHostPort(s.tcpIP, strconv.Itoa(ch.Request.Port)), nil
}

// podAddress resolves a check's host and port to a server pod's address,
// as a client without a sidecar reaches it (kube-proxy picks a pod of the
// Service; the port becomes the Service port's targetPort).
func (e *istioEnv) podAddress(ch *Check, s *sender) (string, error) {
	if ch.Request.Host == nil {
		return "", errors.New("request.host is null")
	}
	host := *ch.Request.Host
	if m := podHostRE.FindStringSubmatch(host); m != nil {
		ws := e.workloads[m[1]+"/"+m[2]]
		if len(ws) == 0 {
			return "", fmt.Errorf("%s: backends.yaml has no workload %s/%s", host, m[1], m[2])
		}
		ip, _, _ := net.SplitHostPort(ws[0].w.InboundAddress)
		return net.JoinHostPort(ip, strconv.Itoa(ch.Request.Port)), nil
	}
	name, ns, _ := strings.Cut(strings.TrimSuffix(host, ".svc.cluster.local"), ".")
	ns, _, _ = strings.Cut(ns, ".")
	if ns == "" {
		ns = ch.Via.MeshClient.Namespace
	}
	b := &e.data.Backends
	for i := range b.Services {
		svc := &b.Services[i]
		if svc.Name != name || b.ns(svc.Namespace) != ns {
			continue
		}
		for _, p := range svc.Ports {
			if n, _ := p["port"].(float64); int(n) == ch.Request.Port {
				for _, w := range svc.Workloads {
					if ws := e.workloads[ns+"/"+w.Name]; len(ws) > 0 {
						ip, _, _ := net.SplitHostPort(ws[0].w.InboundAddress)
						return net.JoinHostPort(ip, strconv.Itoa(servicePortTarget(p))), nil
					}
				}
			}
		}
	}
	return "", fmt.Errorf("%s:%d: backends.yaml has no such service port", host, ch.Request.Port)
}

// classifyConnError turns a failed plain request into the connect error
// curl would report: refused (7), timed out (28), or the server closing
// or resetting the connection without an answer (56, "failure receiving
// network data", how the tasks show a sidecar dropping plaintext under
// STRICT).
func classifyConnError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return &connectError{code: curlConnectFailed, err: err}
	case errors.As(err, &ne) && ne.Timeout():
		return &connectError{code: curlTimeout, err: err}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		strings.Contains(err.Error(), "server closed"), strings.Contains(err.Error(), "EOF"):
		return &connectError{code: curlRecvFailure, err: err}
	}
	return err
}

// curlRecvFailure is curl's exit code for a connection closed or reset
// while it waited for the answer.
const curlRecvFailure = 56

// tcpExchangeFrom is tcpExchange on a connection from ip (any when ""); a
// connection closed before the answer is a connect error, as nc sees it.
func tcpExchangeFrom(ip, addr, data, hold string) (*testenv.Response, error) {
	if ip == "" {
		return tcpExchange(addr, data, hold)
	}
	wait := time.Second
	if d, err := time.ParseDuration(hold); err == nil && d > 0 {
		wait = d
	}
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	start := time.Now()
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, classifyConnError(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait + 5*time.Second))
	if _, err := c.Write([]byte(data)); err != nil {
		return nil, classifyConnError(err)
	}
	buf := make([]byte, 0, 256)
	one := make([]byte, 1)
	for len(buf) < 4096 {
		n, err := c.Read(one)
		if n == 1 {
			if one[0] == '\n' {
				break
			}
			buf = append(buf, one[0])
		}
		if err != nil {
			var ne net.Error
			if len(buf) == 0 && errors.As(err, &ne) && ne.Timeout() {
				// Held open without an answer: not the rejection (a close
				// by the server's sidecar) the pages mean.
				return nil, fmt.Errorf("tcp %s: no answer, and the connection was not closed: %w", addr, err)
			}
			if len(buf) == 0 {
				return nil, classifyConnError(fmt.Errorf("tcp %s: closed without an answer: %w", addr, err))
			}
			break
		}
	}
	return &testenv.Response{Proto: "tcp", Body: buf, Latency: time.Since(start)}, nil
}

// startSecurityClients starts the backends.yaml clients of a security case:
// a sidecar with its own IP, service account and outbound TCP listeners,
// or, for sidecar: false, just an address to send from.
func (e *istioEnv) startSecurityClients(t *testing.T, c *Case) {
	b := &e.data.Backends
	for _, cl := range b.Clients {
		ns := b.ns(cl.Namespace)
		ip := testenv.LoopbackIP()
		if cl.Sidecar != nil && !*cl.Sidecar {
			e.senders[ns+"/"+cl.Name] = &sender{ip: ip, direct: directHTTP(ip)}
			continue
		}
		co := testenv.ClientOptions{Name: cl.Name, Namespace: ns, Labels: cl.Labels, IP: ip, OutboundTCPIP: ip,
			ServiceAccount: cl.ServiceAccount, Locality: e.data.clientLocality(ns, cl.Name, c.Checks)}
		client := e.mesh.AddClient(co)
		e.clients[ns+"/"+cl.Name] = client
		e.senders[ns+"/"+cl.Name] = &sender{client: client, ip: ip, tcpIP: ip}
	}
}
