//go:build !linux

package main

import "os/exec"

func setDieWithParent(cmd *exec.Cmd) {}
