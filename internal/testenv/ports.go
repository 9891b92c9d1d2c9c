package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// port is released before it is returned, so another process can take it
// first; the helpers that start servers retry on "address already in use".
func FreePort() int {
	_, port, err := net.SplitHostPort(FreeAddrOn("127.0.0.1"))
	if err != nil {
		panic(err)
	}
	n, _ := strconv.Atoi(port)
	return n
}

// FreeAddr returns "127.0.0.1:N" for a port from FreePort.
func FreeAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort())) }

// pollInterval is how often the wait helpers retry.
const pollInterval = 50 * time.Millisecond

var probeClient = &http.Client{Timeout: 2 * time.Second}

// WaitHTTP polls url with GET until it answers with status want, failing the
// test if that does not happen within timeout.
func WaitHTTP(t testing.TB, url string, want int, timeout time.Duration) {
	t.Helper()
	if err := pollHTTP(url, want, timeout, nil); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// pollHTTP is WaitHTTP returning an error; it gives up early when exited is
// closed (the server's process is gone).
func pollHTTP(url string, want int, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := probeClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == want {
				cancel()
				return nil
			}
			last = fmt.Sprintf("status %d, body %q", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		cancel()
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s: no status %d within %v; last: %s", url, want, timeout, last)
		}
		select {
		case <-exited:
			return errExited
		case <-time.After(pollInterval):
		}
	}
}

var errExited = errors.New("process exited")

// Eventually calls check until it returns nil or timeout passes, and returns
// the last error on timeout.
func Eventually(check func() error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not true after %v: %w", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// pollTCP waits until addr accepts TCP connections.
func pollTCP(addr string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		select {
		case <-exited:
			return fmt.Errorf("%s: process exited: %v", addr, last)
		case <-time.After(pollInterval):
		}
	}
	return fmt.Errorf("%s not accepting connections after %s: %v", addr, timeout, last)
}

// FreeAddrOn returns "ip:N" for a port that was free on ip a moment ago.
// N is below the kernel's ephemeral range (ip_local_port_range): a port
// from that range (what binding ":0" gives) can be taken between the check
// and the server's bind by the source port of any outgoing connection on the
// machine, which made gateway listeners fail with "address already in use".
func FreeAddrOn(ip string) string {
	lo, hi := quietPorts()
	for try := 0; try < 100; try++ {
		port := lo + rand.IntN(hi-lo)
		addr := net.JoinHostPort(ip, strconv.Itoa(port))
		if reserve(port) && portFree(addr) {
			return addr
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		panic(fmt.Sprintf("testenv: no free port on %s: %v", ip, err))
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreeOffset returns an offset that makes every port+offset free on
// 127.0.0.1, for a gateway's --port-offset. It keeps them below the
// ephemeral range when the ports' spread allows it.
func FreeOffset(t testing.TB, ports []int) int {
	t.Helper()
	if len(ports) == 0 {
		return FreePort()
	}
	ports = slices.Compact(slices.Sorted(slices.Values(ports))) // each port once
	minP, maxP := slices.Min(ports), slices.Max(ports)
	lo, hi := quietPorts()
	// Offsets keeping every port in [lo, hi); --port-offset is never negative.
	first, last := max(lo-minP, 0), hi-1-maxP
	if first > last {
		first, last = 20000, 65535-maxP // the spread is too wide: anywhere
	}
	for try := 0; try < 100 && last >= first; try++ {
		offset := first + rand.IntN(last-first+1)
		ok := true
		for _, p := range ports {
			if !reserve(p+offset) || !portFree(net.JoinHostPort("127.0.0.1", strconv.Itoa(p+offset))) {
				ok = false
				break
			}
		}
		if ok {
			return offset
		}
	}
	t.Fatalf("testenv: no port offset leaves Gateway ports %v free", ports)
	return 0
}

// handedOut are the ports this process gave out: a port is free between
// the check and the server's bind, and was handed twice (a gateway's
// port offset, then a control plane's HTTP address: "404 page not found"
// from the wrong server). Never hand a port out twice.
var handedOut = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// reserve marks port handed out, reporting false if it already was.
func reserve(port int) bool {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.m[port] {
		return false
	}
	handedOut.m[port] = true
	return true
}

// portFree tells whether addr can be listened on now.
func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// quietPorts is the range [lo, hi) FreeAddrOn picks from: from 10000 up to
// the start of the ephemeral range, or 20000..30000 when that cannot be read.
func quietPorts() (lo, hi int) {
	lo, hi = 10000, 30000
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		if start, err := strconv.Atoi(f[0]); err == nil && start > lo+1000 {
			hi = start
		}
	}
	return lo, hi
}

// loopbackNext numbers the addresses LoopbackIP hands out.
var loopbackNext atomic.Uint32

// LoopbackIP returns a loopback address of its own (127.B.C.D, every one
// of 127/8 is local on Linux) for a workload that must be told apart by
// address, as pods are by their IPs: its sidecar's upstream connections
// leave from it and its ports can be the workload's real port numbers. B
// comes from the process ID, so test binaries running side by side rarely
// share addresses.
func LoopbackIP() string {
	n := loopbackNext.Add(1)
	for n&0xff == 0 || n&0xff == 0xff {
		n = loopbackNext.Add(1)
	}
	b := 20 + os.Getpid()%200
	return fmt.Sprintf("127.%d.%d.%d", b, (n>>8)&0xff, n&0xff)
}
