package benchproc

import (
	"os/exec"
	"syscall"
)

// setDieWithParent makes the child get SIGKILL when the bench dies, so an
// interrupted run leaves no control plane behind.
func setDieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
