package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// stopGrace is how long etcd and kube-apiserver get after SIGTERM before
// SIGKILL.
const stopGrace = 10 * time.Second

// process is one etcd or kube-apiserver started by the cluster. Its output
// goes to a file that is kept when the test fails (Cluster.Logs).
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // exit status; read after done is closed
	stop    sync.Once
}

// startProcess runs bin with args, stdout and stderr appended to logPath.
// The kernel kills it if the test binary dies (Pdeathsig), so a test that
// panics or times out leaves no server holding its ports.
func startProcess(name, bin, logPath string, args []string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("kubetest: start %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// childEnv is the test's environment without proxy settings: the API
// server calls admission webhooks on 127.0.0.1 with Go's proxy-from-
// environment transport, and a proxy variable would send them elsewhere.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop ends the process: SIGTERM, then SIGKILL after stopGrace. It waits for
// the exit and is safe to call more than once.
func (p *process) Stop() {
	p.stop.Do(func() { testenv.Terminate(p.cmd.Process, p.done, stopGrace) })
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// addrInUse tells whether the process failed because a port was taken
// between testenv.FreePort and its bind; the caller retries on new ports.
func (p *process) addrInUse() bool {
	b, _ := os.ReadFile(p.logPath)
	return strings.Contains(string(b), "address already in use")
}
