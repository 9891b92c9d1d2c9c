package nodeagent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-mesh/sluice/pkg/netns"
)

// Netns is a pod's network namespace, held open (as istio-cni's
// PodNetnsProcFinder keeps the fd) so it stays valid while the pod is
// served even if the process it was found through ends.
type Netns struct {
	f *os.File
	// Inode identifies the namespace.
	Inode uint64
}

// Path opens the namespace again (for setns) through the held fd.
func (n *Netns) Path() string { return fmt.Sprintf("/proc/self/fd/%d", n.f.Fd()) }

// Close releases the namespace.
func (n *Netns) Close() error { return n.f.Close() }

// errNoNetns: no process of the pod was found (it may not have started).
var errNoNetns = errors.New("no process in the pod's network namespace found")

// cgroupPodUID finds the pod UID in a cgroup path, as istio-cni's
// podcgroupns_linux.go does (its first regexp): "pod" and the UID between
// punctuation, with '-' or '_' separating its groups (cgroupfs and systemd
// drivers).
var cgroupPodUID = regexp.MustCompile(`[[:punct:]]pod([[:xdigit:]]{8}[[:punct:]]?[[:xdigit:]]{4}[[:punct:]]?[[:xdigit:]]{4}[[:punct:]]?[[:xdigit:]]{4}[[:punct:]]?[[:xdigit:]]{12})[[:punct:]]`)

// PodUIDFromCgroup returns the pod UID a /proc/<pid>/cgroup's content
// names, canonicalized with dashes, or "".
func PodUIDFromCgroup(content string) types.UID {
	for _, line := range strings.Split(content, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if m := cgroupPodUID.FindStringSubmatch(parts[2] + "/"); m != nil {
			return types.UID(canonicalUID(m[1]))
		}
	}
	return ""
}

// canonicalUID is istio-cni's canonicalizePodUID: punctuation becomes '-'
// and a UID written without separators gets them back.
func canonicalUID(s string) string {
	hex := strings.Map(func(r rune) rune {
		if strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return r
		}
		return -1
	}, s)
	if len(hex) != 32 {
		return s
	}
	return hex[:8] + "-" + hex[8:12] + "-" + hex[12:16] + "-" + hex[16:20] + "-" + hex[20:]
}

// FindNetns finds a pod's network namespace among the processes under
// procRoot (/proc; the node proxy runs with the host's PID namespace, as
// istio-cni's DaemonSet with hostPID): first a process whose cgroup names
// the pod's UID (istio-cni's PodNetnsProcFinder), else a namespace, other
// than the finder's own, holding one of the pod's IPs on an interface
// (for runtimes that put no pod UID in the cgroup path).
func FindNetns(procRoot string, uid types.UID, ips []string) (*Netns, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("find netns: %w", err)
	}
	own, _ := inode(filepath.Join(procRoot, "self", "ns", "net"))
	seen := map[uint64]string{}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil || !e.IsDir() {
			continue
		}
		path := filepath.Join(procRoot, e.Name(), "ns", "net")
		ino, err := inode(path)
		if err != nil || ino == own {
			continue // gone, a kernel thread, or the host's namespace
		}
		if cg, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cgroup")); err == nil && uid != "" && PodUIDFromCgroup(string(cg)) == uid {
			return open(path, ino)
		}
		if _, ok := seen[ino]; !ok {
			seen[ino] = path
		}
	}
	for ino, path := range seen {
		if holdsIP(path, ips) {
			return open(path, ino)
		}
	}
	return nil, errNoNetns
}

func inode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no inode", path)
	}
	return st.Ino, nil
}

// open holds the namespace, checking it is still the one found.
func open(path string, ino uint64) (*Netns, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Ino != ino {
		f.Close()
		return nil, fmt.Errorf("open netns %s: the process changed meanwhile", path)
	}
	return &Netns{f: f, Inode: ino}, nil
}

// holdsIP: one of ips is on an interface of the namespace at path.
func holdsIP(path string, ips []string) bool {
	var addrs []net.Addr
	if err := netns.Do(path, func() error {
		var err error
		addrs, err = net.InterfaceAddrs()
		return err
	}); err != nil {
		return false
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		for _, ip := range ips {
			if p := net.ParseIP(ip); p != nil && ipn.IP.Equal(p) {
				return true
			}
		}
	}
	return false
}
