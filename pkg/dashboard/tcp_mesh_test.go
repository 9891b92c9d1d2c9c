package dashboard_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/dashboard"
)

// tcpLine sends one line over a new connection and reads tcp-echo's
// answer ("<prefix> <line>").
func tcpLine(addr, line string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return err
	}
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasSuffix(answer, line+"\n") {
		return fmt.Errorf("tcp-echo answered %q to %q", answer, line)
	}
	return nil
}

// TestScraperTCP: 20 connections through a client sidecar's outbound TCP
// listener, each sending "hello\n" (6 bytes) and reading "one hello\n"
// (10), scraped 10 s apart: the client's edge to the service carries
// 20*16/10 bytes a second as the client reported it; the server side,
// which knows its service but its peer only by principal, is an edge
// from unknown to the service with the same bytes and the mTLS mark, and
// one from the service to the workload. TCP is never an error.
func TestScraperTCP(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("tcp-echo.yaml", testenv.ServiceYAML("tcp-echo", "default", map[string]string{"app": "tcp-echo"}, map[string]int{"tcp": 9000}))
	srv := m.AddWorkload(testenv.WorkloadOptions{Service: "tcp-echo", Version: "v1", PortName: "tcp", TCPPrefix: "one"})
	ip := testenv.LoopbackIP()
	c := m.AddClient(testenv.ClientOptions{Name: "demo-client", OutboundTCPIP: ip})
	m.WaitSynced(30 * time.Second)
	addr := ip + ":9000"
	m.WaitConverged(func() error { return tcpLine(addr, "probe") }, 30*time.Second)

	s := dashboard.NewScraper(dashboard.ScrapeOptions{Targets: func() []dashboard.Target {
		return []dashboard.Target{{ID: "client", Admin: c.AdminAddress}, {ID: "server", Admin: srv.AdminAddress}}
	}})
	ctx := context.Background()
	t0 := time.Now()
	s.ScrapeOnce(ctx, t0)
	for range 20 {
		if err := tcpLine(addr, "hello"); err != nil {
			t.Fatal(err)
		}
	}
	// The proxies count a connection's bytes as they pass and its close
	// when both sides are done: wait for the server side to have closed
	// them all before the second scrape.
	time.Sleep(500 * time.Millisecond)
	s.ScrapeOnce(ctx, t0.Add(10*time.Second))
	tr, err := s.Traffic(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	g := dashboard.BuildGraph(tr)
	svc := dashboard.ServiceID("tcp-echo.default.svc.cluster.local")
	e := edge(t, g, dashboard.WorkloadID("default", "demo-client"), svc)
	if e.Protocol != "tcp" || !near(e.TCPBytes, 20*16/10.0) || e.RPS != 0 || e.Health != dashboard.Healthy {
		t.Errorf("client -> tcp-echo: want tcp, 32 B/s, healthy; got %s %+v", e.Protocol, e.Stats)
	}
	// The server side knows its service (the inbound cluster's metadata)
	// but not its TCP peer's workload (no metadata exchange over TCP):
	// unknown -> service over mTLS, then service -> the workload.
	in := edge(t, g, dashboard.KindUnknown, svc)
	if !near(in.TCPBytes, 20*16/10.0) || in.MTLS != "mutual_tls" || in.Health != dashboard.Healthy {
		t.Errorf("unknown -> tcp-echo: want 32 B/s over mTLS, healthy; got %+v", in.Stats)
	}
	if w := edge(t, g, svc, dashboard.WorkloadID("default", srv.Name)); !near(w.TCPBytes, 20*16/10.0) {
		t.Errorf("tcp-echo -> tcp-echo-v1: want 32 B/s; got %+v", w.Stats)
	}
}
