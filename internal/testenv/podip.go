package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

var podIPNext atomic.Uint32

// PodIP adds a host address to the loopback interface for the test and
// returns it: a pod IP a real API server accepts in EndpointSlices (it
// refuses 127.0.0.0/8) that local processes can still bind and reach.
// Addresses come from 10.222.0.0/16 (the process id picks the third
// byte), and are removed when the test ends. It needs root and iproute2:
// without them the test is skipped, or fails under CI=true.
func PodIP(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		needed(t, "adding pod IPs to the loopback interface needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		needed(t, "adding pod IPs to the loopback interface needs iproute2's ip")
	}
	n := podIPNext.Add(1)
	ip := fmt.Sprintf("10.222.%d.%d", os.Getpid()%250, 1+n%250)
	if out, err := exec.Command("ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput(); err != nil && !strings.Contains(string(out), "File exists") {
		t.Fatalf("testenv: ip addr add %s dev lo: %v: %s", ip, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "addr", "del", ip+"/32", "dev", "lo").Run() })
	return ip
}

// needed skips the test for a missing prerequisite, or fails it under
// CI=true, where every test must run.
func needed(t testing.TB, why string) {
	t.Helper()
	switch os.Getenv("CI") {
	case "true", "TRUE", "True", "1":
		t.Fatalf("testenv: %s (CI=true)", why)
	}
	t.Skipf("testenv: %s", why)
}
