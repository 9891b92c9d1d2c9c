package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// ambientConfig: a Service with a cluster IP over two pods in ambient
// mode (their WorkloadEntries carry the annotation istio-cni puts on a
// captured pod, which makes istiod, and sluice, give them HBONE).
func ambientConfig(clientIP, serverIP string) string {
	we := func(name, ip string) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: %[1]s
  namespace: shop
  annotations: {ambient.istio.io/redirection: enabled}
spec: {address: %[2]s, labels: {app: %[1]s}, serviceAccount: %[1]s}
`, name, ip)
	}
	return `apiVersion: v1
kind: Service
metadata: {name: server, namespace: shop}
spec:
  clusterIP: 10.96.88.10
  selector: {app: server}
  ports: [{name: tcp, port: 80, targetPort: 8080}]
---
` + we("client", clientIP) + "---\n" + we("server", serverIP)
}

// serveSeen answers each connection with the address it came from, then
// echoes what it reads.
func serveSeen(l net.Listener) {
	serveConns(l, func(c net.Conn) {
		fmt.Fprintf(c, "seen %s\n", c.RemoteAddr())
		io.Copy(c, c)
	})
}

// serveConns serves each connection l accepts with serve, closing it
// after, until l is closed.
func serveConns(l net.Listener, serve func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			serve(c)
		}()
	}
}

// seenVia dials addr with dial and returns the first line the far end
// sends ("seen <client address>") after an echo round trip.
func seenVia(dial func(network, addr string) (net.Conn, error), addr string) (string, error) {
	c, err := dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("no greeting: %w", err)
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	if echo, err := r.ReadString('\n'); err != nil || echo != "ping\n" {
		return "", fmt.Errorf("echo %q: %v", echo, err)
	}
	return strings.TrimSpace(line), nil
}

// TestAmbientNodeProxy: two pods in ambient mode, captured by `sluice
// capture --ambient` and served by one `sluice proxy --type ztunnel`
// fed by the control plane's workload API. The client reaches the
// server by its Service's cluster IP and by its pod IP, over HBONE (the
// node proxy's inbound counts tunnel connections, not plaintext), and
// the app sees the client pod's address; L4 AuthorizationPolicies are
// enforced on the server's side, a DENY naming the client's principal
// and an ALLOW that a plaintext client from outside the mesh cannot
// satisfy; traffic to an address outside the mesh passes through.
func TestAmbientNodeProxy(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	testenv.EnableForwarding(t)
	client := m.AddAmbientPod("shop", "client")
	server := m.AddAmbientPod("shop", "server")
	l, err := server.NS.Listen("tcp", "0.0.0.0:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go serveSeen(l)
	m.WriteConfig("ambient.yaml", ambientConfig(client.NS.IP.String(), server.NS.IP.String()))
	node := m.StartNodeProxy(client, server)
	// Bounded: a SYN that escaped capture towards an address nobody has
	// would wait for the kernel's retries.
	fromClient := func(network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return client.NS.Dial(ctx, network, addr)
	}
	want := "seen " + client.NS.IP.String() + ":"
	expect := func(addr, prefix string) func() error {
		return func() error { return expectSeen(fromClient, addr, prefix) }
	}
	refused := func(dial func(string, string) (net.Conn, error), addr string) func() error {
		return func() error {
			if got, err := seenVia(dial, addr); err == nil {
				return fmt.Errorf("%s still answers (%q)", addr, got)
			}
			return nil
		}
	}
	m.WaitConverged(expect("10.96.88.10:80", want), convergeTimeout)

	t.Run("by pod IP, over HBONE", func(t *testing.T) {
		if err := expect(server.NS.IP.String()+":8080", want)(); err != nil {
			t.Fatal(err)
		}
		stats := admin(t, node.AdminAddress, "/stats")
		if !strings.Contains(stats, "ztunnel.inbound.opened:") || strings.Contains(stats, "ztunnel.inbound_plaintext.opened:") {
			t.Errorf("the server's connections did not all arrive over HBONE:\n%s", stats)
		}
	})
	t.Run("outside the mesh: passthrough", func(t *testing.T) {
		out, err := net.Listen("tcp", net.JoinHostPort(client.NS.HostIP.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		go serveSeen(out)
		if err := expect(out.Addr().String(), want)(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("plaintext from outside the mesh", func(t *testing.T) {
		// The host is not in the mesh: its connection is captured on the
		// server pod's plaintext inbound port.
		host := (&net.Dialer{}).Dial
		if err := expectSeen(host, server.NS.IP.String()+":8080", "seen "+server.NS.HostIP.String()+":"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("DENY the client's principal", func(t *testing.T) {
		m.WriteConfig("policy.yaml", clientPolicy("no-client", "DENY"))
		m.WaitConverged(refused(fromClient, "10.96.88.10:80"), convergeTimeout)
		if stats := admin(t, node.AdminAddress, "/stats"); !strings.Contains(stats, "ztunnel.inbound.denied:") {
			t.Errorf("no denial counted:\n%s", stats)
		}
	})
	t.Run("ALLOW the client's principal only", func(t *testing.T) {
		m.WriteConfig("policy.yaml", clientPolicy("only-client", "ALLOW"))
		m.WaitConverged(expect("10.96.88.10:80", want), convergeTimeout)
		host := (&net.Dialer{}).Dial
		if err := refused(host, server.NS.IP.String()+":8080")(); err != nil {
			t.Errorf("plaintext without a principal: %v", err)
		}
	})
}

// clientPolicy is an AuthorizationPolicy on the server whose one rule
// names the client's principal.
func clientPolicy(name, action string) string {
	return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: %s, namespace: shop}
spec:
  selector: {matchLabels: {app: server}}
  action: %s
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}]}]
`, name, action)
}

// expectSeen checks that addr, dialled with dial, greets with prefix.
func expectSeen(dial func(string, string) (net.Conn, error), addr, prefix string) error {
	got, err := seenVia(dial, addr)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(got, prefix) {
		return fmt.Errorf("%s answered %q, want %q...", addr, got, prefix)
	}
	return nil
}
