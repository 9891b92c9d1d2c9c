// Package netnstest gives tests a network namespace of their own, as a
// pod has: a namespace joined to the root namespace by a veth pair with
// addresses from 10.250.0.0/16 (a /30 per namespace) and fd00:250::/48, processes run
// inside it, and sockets opened inside it from the test process itself
// (the calling OS thread enters the namespace for the socket's creation
// and leaves it again, as vishvananda/netns does). It needs root and the
// ip command; a test without them is skipped, or fails under CI=true.
package netnstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-mesh/sluice/pkg/netns"
)

// NS is one network namespace with a veth pair to the root namespace.
type NS struct {
	// Name is the namespace's name (/var/run/netns/<Name>).
	Name string
	// HostIP is the root namespace's end of the veth pair, IP the
	// namespace's (its default route goes through HostIP).
	HostIP, IP netip.Addr
	// HostIP6 and IP6 are the pair's IPv6 addresses (fd00:250::/64
	// subnets from the same number, without duplicate address
	// detection, so they are usable at once).
	HostIP6, IP6 netip.Addr
	hostIf       string
	// linked is set once this NS created hostIf (only then is it removed).
	linked bool
}

// errTaken: the veth name or the subnet is another process's.
var errTaken = errors.New("taken")

// Require skips the test (fails it under CI=true) unless it runs as root
// with the given commands in PATH (ip is always needed).
func Require(t testing.TB, commands ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces)")
	}
	for _, c := range append([]string{"ip"}, commands...) {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "netnstest: needs " + strings.Join(missing, ", ")
	if inCI() {
		t.Fatalf("%s (CI=%s: a missing requirement fails; .ci/run installs iptables and runs as root)", msg, os.Getenv("CI"))
	}
	t.Skip(msg)
}

func inCI() bool {
	switch os.Getenv("CI") {
	case "", "0", "false":
		return false
	}
	return true
}

var seq atomic.Uint32

// New makes a namespace, removed when the test ends. The /30 is chosen
// from the process id and a counter and skipped while its address is
// already on this machine (another test process holds it).
func New(t testing.TB) *NS {
	t.Helper()
	Require(t)
	for range 64 {
		n := seq.Add(1)
		k := (uint32(os.Getpid())*64 + n) % (256 * 64)
		host := netip.AddrFrom4([4]byte{10, 250, byte(k / 64), byte(k%64*4 + 1)})
		if addressInUse(host) {
			continue
		}
		ns := &NS{
			Name:   fmt.Sprintf("sluice-%d-%d", os.Getpid(), n),
			HostIP: host, IP: host.Next(),
			HostIP6: netip.MustParseAddr(fmt.Sprintf("fd00:250:0:%x::1", k)),
			IP6:     netip.MustParseAddr(fmt.Sprintf("fd00:250:0:%x::2", k)),
			hostIf:  fmt.Sprintf("slh%d", k),
		}
		if err := ns.create(); err != nil {
			ns.remove()
			if errors.Is(err, errTaken) {
				continue // another test process took this number meanwhile
			}
			t.Fatalf("netnstest: %v", err)
		}
		t.Cleanup(ns.remove)
		return ns
	}
	t.Fatal("netnstest: no free 10.250.0.0/16 subnet")
	return nil
}

func addressInUse(a netip.Addr) bool {
	addrs, _ := net.InterfaceAddrs()
	for _, x := range addrs {
		if ipn, ok := x.(*net.IPNet); ok && ipn.Contains(a.AsSlice()) {
			return true
		}
	}
	return false
}

func (ns *NS) create() error {
	peer := ns.hostIf + "p"
	steps := [][]string{
		{"netns", "add", ns.Name},
		{"link", "add", ns.hostIf, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", ns.Name},
		{"addr", "add", ns.HostIP.String() + "/30", "dev", ns.hostIf},
		{"-6", "addr", "add", ns.HostIP6.String() + "/64", "dev", ns.hostIf, "nodad"},
		{"link", "set", ns.hostIf, "up"},
		{"-n", ns.Name, "addr", "add", ns.IP.String() + "/30", "dev", peer},
		{"-n", ns.Name, "-6", "addr", "add", ns.IP6.String() + "/64", "dev", peer, "nodad"},
		{"-n", ns.Name, "link", "set", peer, "up"},
		{"-n", ns.Name, "link", "set", "lo", "up"},
		{"-n", ns.Name, "route", "add", "default", "via", ns.HostIP.String()},
		{"-n", ns.Name, "-6", "route", "add", "default", "via", ns.HostIP6.String()},
	}
	for i, s := range steps {
		out, err := exec.Command("ip", s...).CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "File exists") || strings.Contains(string(out), "Address already assigned") {
				err = errors.Join(errTaken, err)
			}
			return fmt.Errorf("ip %s: %w: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
		if i == 1 {
			ns.linked = true
		}
	}
	return nil
}

// remove deletes the namespace (and with it the veth pair, if this NS
// made it).
func (ns *NS) remove() {
	exec.Command("ip", "netns", "del", ns.Name).Run()
	if ns.linked {
		exec.Command("ip", "link", "del", ns.hostIf).Run()
	}
}

// Command is name run inside the namespace (ip netns exec), as root.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Do runs f with the calling goroutine's OS thread inside the namespace:
// sockets f creates stay in it. The thread is returned to its namespace
// after; if that fails, the thread is not handed back to the scheduler
// (it stays locked and ends with the goroutine).
func (ns *NS) Do(f func() error) error {
	return netns.Do(ns.Path(), f)
}

// Path is the namespace's file (/var/run/netns/<Name>).
func (ns *NS) Path() string { return filepath.Join("/var/run/netns", ns.Name) }

// Dial connects from inside the namespace.
func (ns *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen listens inside the namespace.
func (ns *NS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := ns.Do(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// Start starts cmd inside the namespace: the child is forked from a
// thread inside it, so cmd may run as another user (SysProcAttr
// Credential), which ip netns exec would not allow.
func (ns *NS) Start(cmd *exec.Cmd) error {
	return ns.Do(cmd.Start)
}
