// Package benchproc runs the processes a benchmark measures (sluice,
// fortio, nginx, ...): output to a log file, optionally pinned to CPUs
// with taskset, killed with the benchmark, and read for CPU time and
// memory from /proc.
package benchproc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Process is a process the bench started, its output in a log file.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	// lastCPU is the last CPU time read, returned once the process is gone.
	lastCPU atomic.Uint64 // float64 bits
}

// Options say how to start a process.
type Options struct {
	// Name names the process in errors and its log, LogDir/<Name>.log.
	Name, LogDir string
	// Bin and Args are the command.
	Bin  string
	Args []string
	// Env is added to the bench's environment.
	Env []string
	// CPUs pins the process to these CPUs (taskset -c), none: unpinned.
	CPUs string
}

// Start starts bin with args, its output in logDir/name.log.
func Start(bin, logDir, name string, args ...string) (*Process, error) {
	return StartWith(Options{Name: name, LogDir: logDir, Bin: bin, Args: args})
}

// StartWith starts the process o describes.
func StartWith(o Options) (*Process, error) {
	logPath := filepath.Join(o.LogDir, o.Name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	bin, args := o.Bin, o.Args
	if o.CPUs != "" {
		// taskset execs the command: the pid stays the process's.
		bin, args = "taskset", append([]string{"-c", o.CPUs, bin}, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	setDieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", o.Name, err)
	}
	p := &Process{Name: o.Name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Stop ends the process: SIGTERM, then SIGKILL after 5 s.
func (p *Process) Stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Tail is the end of the process's log, for error messages.
func (p *Process) Tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// WaitReady polls url until it answers 200, the process exits or the
// timeout passes.
func (p *Process) WaitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not ready after %v: %v\n%s", p.Name, url, timeout, err, p.Tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("%s exited before %s was ready:\n%s", p.Name, url, p.Tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CPUSeconds is the process's user+system CPU time so far
// (/proc/PID/stat utime and stime, in clock ticks of 1/100 s); once the
// process is gone, the last value read.
func (p *Process) CPUSeconds() float64 {
	if v := p.readCPU(); v > 0 {
		p.lastCPU.Store(math.Float64bits(v))
	}
	return math.Float64frombits(p.lastCPU.Load())
}

func (p *Process) readCPU() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return 0
	}
	fields := strings.Fields(string(b[i+2:]))
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100
}

// Memory is a process's memory from /proc/PID/status, in MiB: RSS
// (VmRSS), its anonymous part (RssAnon: the process's own pages; the
// rest is its binary's and libraries' file pages, shared through the page
// cache by every process of the same binary) and the peak RSS (VmHWM).
type Memory struct{ RSS, Anon, HWM float64 }

// Mem reads the process's Memory; zero once it is gone.
func (p *Process) Mem() Memory {
	var m Memory
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = kb / 1024
		case "RssAnon:":
			m.Anon = kb / 1024
		case "VmHWM:":
			m.HWM = kb / 1024
		}
	}
	return m
}

// MemMiB is Mem's RSS and peak RSS.
func (p *Process) MemMiB() (rss, hwm float64) {
	m := p.Mem()
	return m.RSS, m.HWM
}

// PID is the process's id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Kill kills the process at once.
func (p *Process) Kill() { p.cmd.Process.Kill() }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Log is the path of the process's log file.
func (p *Process) Log() string { return p.log }
