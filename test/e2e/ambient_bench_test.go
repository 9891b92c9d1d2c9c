package e2e

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// serveEcho echoes every connection's bytes back.
func serveEcho(l net.Listener) {
	serveConns(l, func(c net.Conn) { io.Copy(c, c) })
}

// benchConn measures one connection: round trips of 1 KiB
// ("rtt") or 1 MiB writes echoed back ("stream").
func benchConn(b *testing.B, dial func() (net.Conn, error), size int) {
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, size)
	back := make([]byte, size)
	b.SetBytes(int64(2 * size))
	b.ResetTimer()
	for range b.N {
		done := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(c, back)
			done <- err
		}()
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAmbient: one TCP connection between two pods in network
// namespaces, first straight (before capture: the baseline, in the same
// run), then captured by `sluice capture --ambient` and carried by one
// node proxy over HBONE (mutual TLS, HTTP/2 CONNECT) from the client
// pod's in-pod listener to the server pod's. Each does 1 KiB round trips
// and 1 MiB echoes; the node proxy's cost is the ratio of the two:
//
//	sudo go test -run '^$' -bench BenchmarkAmbient -benchtime 3s ./test/e2e
func BenchmarkAmbient(b *testing.B) {
	m := testenv.NewMesh(b, testenv.MeshOptions{})
	testenv.EnableForwarding(b)
	client := testenv.NewAmbientPod(b, "shop", "client")
	server := testenv.NewAmbientPod(b, "shop", "server")
	l, err := server.NS.Listen("tcp", "0.0.0.0:8080")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go serveEcho(l)
	dial := func(addr string) func() (net.Conn, error) {
		return func() (net.Conn, error) { return client.NS.Dial(b.Context(), "tcp", addr) }
	}
	sizes := []struct {
		name string
		size int
	}{{"rtt-1KiB", 1 << 10}, {"stream-1MiB", 1 << 20}}
	results := map[string]float64{}
	// The parent runs once; each sub-benchmark keeps its last (largest)
	// run's time per op for the ratios.
	run := func(path, addr string) {
		for _, s := range sizes {
			b.Run(path+"/"+s.name, func(b *testing.B) {
				benchConn(b, dial(addr), s.size)
				results[path+"/"+s.name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
		}
	}
	run("direct", server.NS.IP.String()+":8080")

	client.Capture(b)
	server.Capture(b)
	m.WriteConfig("ambient.yaml", ambientConfig(client.NS.IP.String(), server.NS.IP.String()))
	m.StartNodeProxy(client, server)
	fromClient := func(network, addr string) (net.Conn, error) { return client.NS.Dial(b.Context(), network, addr) }
	// The echo server greets nothing: converged once a connection to the
	// VIP echoes a byte.
	m.WaitConverged(func() error {
		c, err := fromClient("tcp", "10.96.88.10:80")
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte{1}); err != nil {
			return err
		}
		_, err = io.ReadFull(c, make([]byte, 1))
		return err
	}, convergeTimeout)
	run("ambient", "10.96.88.10:80")
	for _, s := range sizes {
		ratio := results["ambient/"+s.name] / results["direct/"+s.name]
		// Printed, not logged: a parent with sub-benchmarks reports no
		// metrics of its own, and benchmark logs need -v.
		fmt.Printf("BenchmarkAmbient %s: node proxy over HBONE takes %.2fx the direct time per op\n", s.name, ratio)
	}
}
