package netnstest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNamespace: a listener made inside the namespace is reached from the
// root namespace over the veth pair, a connection made inside reaches a
// listener on the host's end, a process run inside sees the namespace's
// address only, and the calling thread is back in the root namespace
// after (a root-namespace listener on loopback still answers).
func TestNamespace(t *testing.T) {
	ns := New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inner, err := ns.Listen("tcp", ns.IP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	go serveLine(inner, "inner")
	c, err := net.DialTimeout("tcp", inner.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(c); string(b) != "inner" {
		t.Errorf("host -> namespace: %q", b)
	}
	c.Close()
	inner6, err := ns.Listen("tcp", net.JoinHostPort(ns.IP6.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer inner6.Close()
	go serveLine(inner6, "inner6")
	if c, err = net.DialTimeout("tcp", inner6.Addr().String(), 5*time.Second); err != nil {
		t.Fatalf("host -> namespace over IPv6: %v", err)
	}
	if b, _ := io.ReadAll(c); string(b) != "inner6" {
		t.Errorf("host -> namespace over IPv6: %q", b)
	}
	c.Close()

	host, err := net.Listen("tcp", ns.HostIP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go serveLine(host, "host")
	c, err = ns.Dial(ctx, "tcp", host.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(c); string(b) != "host" {
		t.Errorf("namespace -> host: %q", b)
	}
	if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != ns.IP.String() {
		t.Errorf("connection from %s, want the namespace's %s", got, ns.IP)
	}
	c.Close()

	out, err := ns.Command(ctx, "ip", "-4", "-o", "addr").CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	if !strings.Contains(string(out), ns.IP.String()) || strings.Contains(string(out), ns.HostIP.String()+"/") {
		t.Errorf("addresses inside the namespace:\n%s", out)
	}
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	go serveLine(lo, "root")
	for range 20 { // every thread the scheduler hands back is in the root namespace
		c, err := net.DialTimeout("tcp", lo.Addr().String(), time.Second)
		if err != nil {
			t.Fatalf("root namespace loopback after Do: %v", err)
		}
		c.Close()
	}
	cmd := exec.Command("ip", "-4", "-o", "addr")
	var buf strings.Builder
	cmd.Stdout = &buf
	if err := ns.Start(cmd); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if !strings.Contains(buf.String(), ns.IP.String()) {
		t.Errorf("Start: the process is not inside the namespace:\n%s", buf.String())
	}
}

func serveLine(l net.Listener, line string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Write([]byte(line))
		c.Close()
	}
}

// TestTakenNumberSkipped: a veth name another process holds (made here
// as a veth pair under the name New would take next) is skipped, and
// the other's link is left alone.
func TestTakenNumberSkipped(t *testing.T) {
	Require(t)
	k := (uint32(os.Getpid())*64 + seq.Load() + 1) % (256 * 64)
	taken := fmt.Sprintf("slh%d", k)
	if out, err := exec.Command("ip", "link", "add", taken, "type", "veth", "peer", "name", taken+"x").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	defer exec.Command("ip", "link", "del", taken).Run()
	ns := New(t)
	if ns.hostIf == taken {
		t.Fatalf("took %s, which exists", taken)
	}
	ns.remove()
	if err := exec.Command("ip", "link", "show", taken).Run(); err != nil {
		t.Errorf("the other's link %s was removed: %v", taken, err)
	}
}
