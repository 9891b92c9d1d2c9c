package demo

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// children starts and stops the demo's processes, each logging to a file.
type children struct {
	bin    string
	logDir string
	mu     sync.Mutex
	procs  []child
}

// child is one started process; done closes when it has exited (its
// Wait returned: only that goroutine touches the Cmd's state).
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (c *children) start(ctx context.Context, name string, args ...string) error {
	logFile, err := os.Create(filepath.Join(c.logDir, name+".log"))
	if err != nil {
		return fmt.Errorf("demo: log for %s: %w", name, err)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("demo: start %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(done) }()
	c.mu.Lock()
	c.procs = append(c.procs, child{cmd: cmd, done: done})
	c.mu.Unlock()
	return nil
}

// stopAll sends SIGTERM to every child, then SIGKILL to any still running.
func (c *children) stopAll() {
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	timer := time.NewTimer(3 * time.Second)
	defer timer.Stop()
	expired := false
	for _, p := range procs {
		if !expired {
			select {
			case <-p.done:
				continue
			case <-timer.C:
				expired = true
			}
		}
		p.cmd.Process.Kill()
		<-p.done
	}
}

// port returns preferred if it is free on loopback, else any free port.
func port(preferred int) (int, error) {
	if preferred > 0 {
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(preferred)); err == nil {
			l.Close()
			return preferred, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("demo: no free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
