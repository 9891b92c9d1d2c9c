package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sluice-mesh/sluice/pkg/echo"
)

// ClientOptions describe a client workload for AddClient.
type ClientOptions struct {
	// Name is the client pod's name; default "client".
	Name string
	// Namespace of the client; default "default".
	Namespace string
	// Labels of the client (what sourceLabels matches); nil means
	// {app: Name}.
	Labels map[string]string
	// Locality is region/zone/subzone, given to the sidecar.
	Locality string
	// OutboundTCPIP gives the sidecar outbound TCP listeners at that IP
	// (one per TCP service port); use a 127.x address of the test's own.
	OutboundTCPIP string
	// IP is the client workload's own address (--ip, see LoopbackIP): its
	// sidecar's upstream connections leave from it. Default 127.0.0.1.
	IP string
	// ServiceAccount is the client's service account (its identity);
	// empty leaves the sidecar's default.
	ServiceAccount string
}

// Client is a sidecar with only an outbound listener: requests sent through
// it are routed the way an app's outbound traffic would be.
type Client struct {
	Name, Namespace string
	Labels          map[string]string
	// OutboundAddress is where the app sends its requests.
	OutboundAddress string
	// AdminAddress is the sidecar's admin endpoint.
	AdminAddress string
	// Sidecar is the proxy process.
	Sidecar *Process
	// HTTP sends plain HTTP/1.1 to the sidecar and never follows redirects.
	HTTP *http.Client
}

// RequestTimeout bounds one request sent by a Client.
const RequestTimeout = 30 * time.Second

// AddClient starts a client sidecar connected to the mesh and waits until it
// is ready.
func (m *Mesh) AddClient(o ClientOptions) *Client {
	m.t.Helper()
	if o.Name == "" {
		o.Name = "client"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	labels := maps.Clone(o.Labels)
	if labels == nil {
		labels = map[string]string{"app": o.Name}
	}
	c := &Client{Name: o.Name, Namespace: o.Namespace, Labels: labels}
	id := o.Namespace + "/" + o.Name
	for attempt := 1; ; attempt++ {
		c.OutboundAddress, c.AdminAddress = FreeAddr(), FreeAddr()
		args := []string{"proxy", "--type", "sidecar", "--name", o.Name, "--namespace", o.Namespace,
			"--labels", labelString(labels),
			"--outbound-address", c.OutboundAddress, "--admin-address", c.AdminAddress}
		if o.Locality != "" {
			args = append(args, "--locality", o.Locality)
		}
		if o.OutboundTCPIP != "" {
			args = append(args, "--outbound-tcp-ip", o.OutboundTCPIP)
		}
		if o.IP != "" && o.IP != "127.0.0.1" {
			args = append(args, "--ip", o.IP)
		}
		if o.ServiceAccount != "" {
			args = append(args, "--service-account", o.ServiceAccount)
		}
		args = append(append(args, m.ProxyControlArgs()...), m.opts.ProxyArgs...)
		c.Sidecar = Start(m.t, "client "+id, args...)
		err := pollHTTP("http://"+c.AdminAddress+"/ready", 200, StartTimeout, c.Sidecar.Done())
		if err == nil {
			break
		}
		if attempt < startAttempts && c.Sidecar.addrInUse() {
			c.Sidecar.Stop()
			continue
		}
		m.t.Fatalf("testenv: client sidecar %s not ready: %v\n%s", id, err, c.Sidecar.Tail(dumpLines))
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}
	c.HTTP = &http.Client{Transport: tr, Timeout: RequestTimeout, CheckRedirect: noRedirects}
	m.t.Cleanup(tr.CloseIdleConnections)
	m.addProxy(&proxyRef{name: o.Name, namespace: o.Namespace, admin: c.AdminAddress, proc: c.Sidecar})
	return c
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// H2C returns a copy of the client that speaks HTTP/2 with prior knowledge
// (cleartext, no upgrade) to the sidecar.
func (c *Client) H2C() *Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	cp := *c
	cp.HTTP = &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: RequestTimeout, CheckRedirect: noRedirects}
	return &cp
}

// ProxyHTTP returns an http.Client that uses the sidecar as an HTTP proxy,
// so requests go out in absolute form ("GET http://reviews:9080/x").
func (c *Client) ProxyHTTP() *http.Client {
	proxyURL := &url.URL{Scheme: "http", Host: c.OutboundAddress}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)},
		Timeout: RequestTimeout, CheckRedirect: noRedirects}
}

// Response is what a client got back.
type Response struct {
	// Status is the HTTP status code; Proto the protocol of the response.
	Status int
	Proto  string
	Header http.Header
	Body   []byte
	// Echo is the decoded echo backend answer, nil when the body is not
	// echo JSON (the proxy answered, or the backend sent something else).
	Echo *echo.Response
	// Latency is the time from sending the request to reading the body.
	Latency time.Duration
}

// Get sends GET path (which may hold a query) to the client's sidecar with
// the given Host and extra headers.
func (c *Client) Get(host, path string, headers map[string]string) (*Response, error) {
	return c.Request(http.MethodGet, host, path, headers, nil)
}

// Request sends a request with the given method, Host, path, headers and
// body to the client's sidecar.
func (c *Client) Request(method, host, path string, headers map[string]string, body []byte) (*Response, error) {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+c.OutboundAddress+path, rd)
	if err != nil {
		return nil, err
	}
	req.Host = host
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return c.Do(req)
}

// Do sends req to the client's sidecar. The request keeps its Host (or, if
// that is empty, the host of its URL) as the destination; the URL is
// pointed at the sidecar's outbound address.
func (c *Client) Do(req *http.Request) (*Response, error) {
	r := req.Clone(req.Context())
	if r.Host == "" {
		r.Host = req.URL.Host
	}
	u := *req.URL
	u.Scheme, u.Host = "http", c.OutboundAddress
	r.URL = &u
	return Send(c.HTTP, r)
}

// Send sends req with hc and reads the whole response into a Response.
func Send(hc *http.Client, req *http.Request) (*Response, error) {
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	out := &Response{Status: resp.StatusCode, Proto: resp.Proto, Header: resp.Header, Body: body,
		Latency: time.Since(start)}
	out.Echo = DecodeEcho(body)
	return out, nil
}

// DecodeEcho returns the echo answer in body, or nil if body is not one.
func DecodeEcho(body []byte) *echo.Response {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	var e echo.Response
	if err := json.Unmarshal(b, &e); err != nil || e.Service == "" {
		return nil
	}
	return &e
}

// String summarises the response for test messages.
func (r *Response) String() string {
	if r == nil {
		return "<no response>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", r.Status, r.Proto)
	if r.Echo != nil {
		fmt.Fprintf(&b, " from %s/%s pod %s: %s %s host=%q headers=%v", r.Echo.Service, r.Echo.Version,
			r.Echo.Pod, r.Echo.Request.Method, r.Echo.Request.Path, r.Echo.Request.Host, r.Echo.Request.Headers)
	} else {
		body := string(r.Body)
		if len(body) > 300 {
			body = body[:300] + "..."
		}
		fmt.Fprintf(&b, " (not from echo) headers=%v body=%q", r.Header, body)
	}
	return b.String()
}

// Served reports whether an echo backend produced the response: its JSON
// body, or the X-Echo-Service header that every echo answer carries.
func (r *Response) Served() bool {
	return r != nil && (r.Echo != nil || r.Header.Get("X-Echo-Service") != "")
}
