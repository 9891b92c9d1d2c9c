//go:build !linux

package testenv

import "os/exec"

// dieWithParent has no portable equivalent outside Linux; cleanups stop
// the processes there.
func dieWithParent(cmd *exec.Cmd) {}
