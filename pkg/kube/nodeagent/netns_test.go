package nodeagent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sluice-mesh/sluice/internal/netnstest"
)

// sleeper starts a process inside ns, as a pod's container runs in its
// sandbox's namespace, and returns its pid.
func sleeper(t *testing.T, ns *netnstest.NS) int {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := ns.Start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// TestFindNetns: a pod's namespace is found in /proc by its IP on an
// interface (no runtime cgroup here), and by the pod UID in a process's
// cgroup before any IP; nothing is found for an IP no namespace holds.
func TestFindNetns(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	sleeper(t, a)
	pidB := sleeper(t, b)
	want := func(ns *netnstest.NS) uint64 {
		ino, err := inode(ns.Path())
		if err != nil {
			t.Fatal(err)
		}
		return ino
	}
	for _, ns := range []*netnstest.NS{a, b} {
		h, err := FindNetns("/proc", "", []string{ns.IP.String()})
		if err != nil {
			t.Fatalf("%s by IP: %v", ns.IP, err)
		}
		if h.Inode != want(ns) {
			t.Errorf("%s by IP: namespace %d, want %d", ns.IP, h.Inode, want(ns))
		}
		if _, err := os.Stat(h.Path()); err != nil {
			t.Errorf("held namespace %s: %v", h.Path(), err)
		}
		h.Close()
	}
	if h, err := FindNetns("/proc", "", []string{"10.251.9.9"}); err == nil {
		t.Errorf("an IP no namespace holds found %d", h.Inode)
	}

	// A proc tree whose one process (b's sleeper) has a kubepods cgroup:
	// found by UID although the IP given is a's.
	root := t.TempDir()
	dir := filepath.Join(root, "4242", "ns")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fmt.Sprintf("/proc/%d/ns/net", pidB), filepath.Join(dir, "net")); err != nil {
		t.Fatal(err)
	}
	uid := "2c48913c-b29f-11e7-9350-020968147796"
	cg := "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2c48913c_b29f_11e7_9350_020968147796.slice/cri-containerd-1.scope\n"
	if err := os.WriteFile(filepath.Join(root, "4242", "cgroup"), []byte(cg), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := FindNetns(root, "2c48913c-b29f-11e7-9350-020968147796", []string{a.IP.String()})
	if err != nil {
		t.Fatalf("by UID %s: %v", uid, err)
	}
	defer h.Close()
	if h.Inode != want(b) {
		t.Errorf("by UID: namespace %d, want b's %d", h.Inode, want(b))
	}
}
