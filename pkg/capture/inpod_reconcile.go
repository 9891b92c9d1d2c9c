package capture

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// ReconcileInpod installs o's in-pod capture in the current network
// namespace unless exactly those rules are there already, as istio-cni
// reconciles an enrolled pod's rules when its node agent starts
// (cni/pkg/nodeagent/net_linux.go reconcileExistingPod): a node agent
// restarting leaves a captured pod's rules in place, without the moment
// ApplyInpod's remove-then-restore would let the pod's traffic pass
// uncaptured. The mark routing is ensured either way. It reports whether
// the rules were (re)installed.
func ReconcileInpod(ctx context.Context, o InpodOptions, b Backend) (bool, error) {
	ok, err := inpodInstalled(ctx, o, b)
	if err != nil {
		return false, err
	}
	if !ok {
		return true, ApplyInpod(ctx, o, b)
	}
	for _, v6 := range []bool{false, true} {
		if v6 && !o.EnableIPv6 {
			continue
		}
		if err := inpodRouting(ctx, v6, true); err != nil {
			return false, err
		}
	}
	return false, nil
}

// inpodInstalled: every rule of BuildInpod(o) is present (iptables -C)
// and the capture has no other rule (lines in or jumping to an ISTIO_
// chain, counted in iptables-save). The rules' order is not compared.
func inpodInstalled(ctx context.Context, o InpodOptions, b Backend) (bool, error) {
	rules := BuildInpod(o)
	for _, fam := range []struct {
		v6    bool
		rules []Rule
	}{{false, rules.V4}, {true, rules.V6}} {
		if fam.v6 && !o.EnableIPv6 {
			continue
		}
		t, err := Detect(ctx, b, fam.v6)
		if err != nil {
			return false, err
		}
		n, err := captureLines(ctx, t)
		if err != nil || n != len(fam.rules) {
			return false, err
		}
		for _, r := range fam.rules {
			check := append([]string{"-t", r.Table, "-C"}, r.Params[1:]...)
			if err := exec.CommandContext(ctx, t.IPTables, check...).Run(); err != nil {
				return false, nil //nolint:nilerr // -C fails for a rule that is not there
			}
		}
	}
	return true, nil
}

// captureLines counts the nat and mangle rules in or jumping to an
// ISTIO_ chain.
func captureLines(ctx context.Context, t Tools) (int, error) {
	n := 0
	for _, table := range []string{"nat", "mangle"} {
		out, err := exec.CommandContext(ctx, t.Save, "-t", table).Output()
		if err != nil {
			return 0, fmt.Errorf("%s -t %s: %w", t.Save, table, err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) > 1 && f[0] == "-A" && (strings.HasPrefix(f[1], "ISTIO_") || strings.HasPrefix(f[len(f)-1], "ISTIO_")) {
				n++
			}
		}
	}
	return n, nil
}
