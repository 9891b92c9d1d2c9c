package httpproxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// tcpBackend serves each connection with serve on a real socket.
func tcpBackend(t *testing.T, serve func(net.Conn)) int {
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
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// tcpService is YAML for a Service with one TCP port 5432 and one
// WorkloadEntry per backend port.
func tcpService(name string, ports ...int) string {
	doc := fmt.Sprintf("---\napiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec: {selector: {app: %s}, ports: [{name: tcp, port: 5432}]}\n", name, name)
	for i, p := range ports {
		doc += fmt.Sprintf("---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: %s-%d}\nspec: {address: 127.0.0.1, labels: {app: %s}, ports: {tcp: %d}}\n", name, i, name, p)
	}
	return doc
}

// connect sends CONNECT authority to the mesh's listener; on 200 it
// returns the tunnel and its reader.
func (m *mesh) connect(authority string) (net.Conn, *bufio.Reader, *http.Response) {
	m.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(m.url, "http://"))
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		m.t.Fatalf("CONNECT %s: %v", authority, err)
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return nil, nil, resp
	}
	return c, br, resp
}

// TestConnectTunnel: bytes go both ways, a half-close reaches the backend
// (which answers after EOF), and the backend's close ends the tunnel.
func TestConnectTunnel(t *testing.T) {
	t.Parallel()
	port := tcpBackend(t, func(c net.Conn) {
		b, _ := io.ReadAll(c) // until the client's half-close
		fmt.Fprintf(c, "got %d bytes: %s", len(b), b)
	})
	m := newMesh(t, tcpService("db", port))
	c, br, resp := m.connect("db:5432")
	if c == nil {
		t.Fatalf("CONNECT: %s %s", resp.Status, resp.Header.Get("X-Sluice-Reason"))
	}
	io.WriteString(c, "hello")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(br) // EOF once the backend closes
	if err != nil || string(got) != "got 5 bytes: hello" {
		t.Errorf("tunnel answered %q, %v", got, err)
	}
}

// TestConnectErrors: before the tunnel opens, failures are answered with
// a status, Envoy's response flag and a one-line reason naming the
// authority and cluster.
func TestConnectErrors(t *testing.T) {
	t.Parallel()
	closed := tcpBackend(t, func(net.Conn) {})
	// a port nothing listens on: take one and close it
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	busy := tcpBackend(t, func(c net.Conn) { io.WriteString(c, "ready\n"); <-hold })
	m := newMesh(t, tcpService("empty")+tcpService("dead", dead)+tcpService("busy", busy)+tcpService("closed", closed)+
		"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: busy}\nspec: {host: busy, trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}}\n")
	first, br, resp := m.connect("busy:5432")
	if first == nil {
		t.Fatalf("first CONNECT to busy: %s", resp.Status)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("first tunnel: %q %v", line, err)
	}
	for _, c := range []struct {
		authority string
		status    int
		flags     string
		reason    string
	}{
		{"empty:5432", 503, "UH", "no healthy upstream"},
		{"dead:5432", 503, "UF", "upstream connect failed"},
		{"busy:5432", 503, "UO", "max_connections"},
	} {
		conn, _, resp := m.connect(c.authority)
		if conn != nil {
			t.Errorf("%s: tunnel opened", c.authority)
			continue
		}
		reason := resp.Header.Get("X-Sluice-Reason")
		if resp.StatusCode != c.status || resp.Header.Get("X-Sluice-Response-Flags") != c.flags ||
			!strings.Contains(reason, c.reason) || !strings.Contains(reason, "CONNECT "+c.authority) || !strings.Contains(reason, "outbound|5432||") {
			t.Errorf("%s: %s flags %q reason %q, want %d %s %q", c.authority, resp.Status, resp.Header.Get("X-Sluice-Response-Flags"), reason, c.status, c.flags, c.reason)
		}
	}
	// After the 200, the upstream closing closes the tunnel.
	conn, br, resp := m.connect("closed:5432")
	if conn == nil {
		t.Fatalf("CONNECT closed: %s", resp.Status)
	}
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("tunnel to a backend that closed: read %d, %v; want EOF", n, err)
	}
}
