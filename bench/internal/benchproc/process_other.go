//go:build !linux

package benchproc

import "os/exec"

func setDieWithParent(cmd *exec.Cmd) {}
