// Package netns runs code inside a network namespace: sockets created
// there stay in it after the thread leaves, which is how a node proxy
// listens and dials inside a pod's network (ztunnel's in-pod mode,
// ztunnel src/inpod/netns.rs) and how tests open sockets in the
// namespaces they make. The calling goroutine's OS thread enters the
// namespace and is returned to its own after, as vishvananda/netns does.
package netns

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs f with the calling goroutine's OS thread inside the network
// namespace at path (e.g. /var/run/netns/<name> or /proc/<pid>/ns/net).
// If the thread cannot return to its own namespace it is not handed back
// to the scheduler: it stays locked and ends with the goroutine.
func Do(path string, f func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: own namespace: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: %w", path, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: setns: %w", path, err)
	}
	ferr := f()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return errors.Join(ferr, fmt.Errorf("netns %s: setns back: %w (thread left locked)", path, err))
	}
	runtime.UnlockOSThread()
	return ferr
}
