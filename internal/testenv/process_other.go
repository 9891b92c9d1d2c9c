//go:build !linux

package testenv

import "os/exec"

// dieWithParent has no portable equivalent outside Linux; cleanups stop
// the processes there.
func dieWithParent(cmd *exec.Cmd) {}

// setCredential is Linux only (capture tests need Linux network
// namespaces).
func setCredential(cmd *exec.Cmd, uid, gid uint32) {}
