package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StopGrace is how long a process gets after SIGTERM before SIGKILL.
const StopGrace = 3 * time.Second

// dumpLines is how many trailing log lines are shown for each process of a
// failed test.
const dumpLines = 60

// Process is one running sluice process started by Start.
type Process struct {
	// Name identifies the process in logs and failure dumps.
	Name string
	// Args are the arguments the binary was started with.
	Args []string
	// LogPath is the file that receives the process's stdout and stderr.
	LogPath string

	cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{}
	err  error // exit status; read after done is closed

	stopOnce sync.Once
}

// Start runs the sluice binary with args in the background. Its stdout and
// stderr go to an in-memory log and to a file under t.TempDir(). The process
// is stopped (SIGTERM, then SIGKILL after StopGrace) when the test ends, and
// if the test failed the last lines of its log are printed under its name.
func Start(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	return StartWith(t, name, ProcessOptions{}, args...)
}

// ProcessOptions change how StartWith runs the binary.
type ProcessOptions struct {
	// Binary replaces the sluice binary (a copy another user may run).
	Binary string
	// UID, when not 0, runs the process as that user and GID.
	UID, GID uint32
	// Start starts the command in place of cmd.Start: inside a network
	// namespace (netnstest.NS.Start), say.
	Start func(*exec.Cmd) error
}

// StartWith is Start with options.
func StartWith(t testing.TB, name string, o ProcessOptions, args ...string) *Process {
	t.Helper()
	bin := o.Binary
	if bin == "" {
		bin = Binary(t)
	}
	logPath := filepath.Join(t.TempDir(), sanitize(name)+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("testenv: %s: create log: %v", name, err)
	}
	lb := &logBuffer{file: f}
	cmd := exec.Command(bin, args...)
	dieWithParent(cmd)
	cmd.Stdout = lb
	cmd.Stderr = lb
	// Pipes are copied by goroutines; do not wait forever for them if the
	// process leaves a child holding them open.
	cmd.WaitDelay = time.Second
	if o.UID != 0 {
		setCredential(cmd, o.UID, o.GID)
	}
	start := cmd.Start
	if o.Start != nil {
		start = func() error { return o.Start(cmd) }
	}
	if err := start(); err != nil {
		f.Close()
		t.Fatalf("testenv: start %s (%s %s): %v", name, bin, strings.Join(args, " "), err)
	}
	p := &Process{Name: name, Args: args, LogPath: logPath, cmd: cmd, log: lb, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lb.close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		// A binary built with -race reports races on stderr and goes on.
		if strings.Contains(p.Log(), "WARNING: DATA RACE") {
			t.Errorf("testenv: %s reported a data race (log %s)", p.Name, p.LogPath)
		}
		if t.Failed() {
			t.Logf("---- last %d log lines of %s (%s) ----\n%s", dumpLines, p.Name, p.LogPath, p.Tail(dumpLines))
		}
	})
	return p
}

// Stop ends the process: SIGTERM, then SIGKILL if it has not exited after
// StopGrace. It waits for the exit and is safe to call more than once.
func (p *Process) Stop() {
	p.stopOnce.Do(func() { Terminate(p.cmd.Process, p.done, StopGrace) })
}

// Terminate ends a started process whose exit closes done: SIGTERM, then
// SIGKILL if it has not exited after grace; it waits for the exit.
func Terminate(proc *os.Process, done <-chan struct{}, grace time.Duration) {
	select {
	case <-done:
		return
	default:
	}
	proc.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		proc.Kill()
		<-done
	}
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and if so how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// PID is the process's id (for measurements such as its RSS).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Log returns everything the process has written so far.
func (p *Process) Log() string { return p.log.String() }

// Tail returns the last n lines the process has written.
func (p *Process) Tail(n int) string {
	s := strings.TrimRight(p.log.String(), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// addrInUse tells whether the process failed because a port was taken,
// which FreePort cannot rule out; callers then retry with new ports.
func (p *Process) addrInUse() bool {
	return strings.Contains(p.Log(), "address already in use")
}

// logBuffer collects a process's output in memory and in a file.
type logBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	file   *os.File
	closed bool
}

// maxLogBytes bounds the in-memory copy; the file keeps everything.
const maxLogBytes = 4 << 20

func (l *logBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.file.Write(b)
	}
	if l.buf.Len()+len(b) > maxLogBytes {
		// Keep the newest half: the tail is what failure dumps show.
		keep := l.buf.Bytes()[l.buf.Len()/2:]
		nb := bytes.NewBuffer(make([]byte, 0, maxLogBytes))
		nb.WriteString("[... earlier output dropped ...]\n")
		nb.Write(keep)
		l.buf = *nb
	}
	return l.buf.Write(b)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		l.file.Close()
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func sanitize(name string) string {
	s := unsafeName.ReplaceAllString(name, "_")
	if s == "" {
		s = "process"
	}
	return s
}

// String describes the process for messages.
func (p *Process) String() string {
	return fmt.Sprintf("%s (pid %d)", p.Name, p.cmd.Process.Pid)
}
