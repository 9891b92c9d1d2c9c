package capture

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Backend is the iptables variant rules go to: "legacy" (xtables),
// "nft" (iptables-nft) or "auto": as Istio's DetectIptablesVersion,
// legacy when it already holds rules in this network namespace, else nft
// when its binaries are there, else the plain iptables binaries.
type Backend string

// Tools are the binaries of one backend and family.
type Tools struct {
	IPTables, Save, Restore string
}

func tools(variant string, v6 bool) Tools {
	base := "iptables"
	if v6 {
		base = "ip6tables"
	}
	if variant != "" {
		base += "-" + variant
	}
	return Tools{IPTables: base, Save: base + "-save", Restore: base + "-restore"}
}

// Detect chooses the binaries of backend b for one family.
func Detect(ctx context.Context, b Backend, v6 bool) (Tools, error) {
	switch b {
	case "legacy", "nft":
		t := tools(string(b), v6)
		if _, err := exec.LookPath(t.Restore); err != nil {
			return t, fmt.Errorf("--iptables-backend %s: %w", b, err)
		}
		return t, nil
	case "", "auto":
	default:
		return Tools{}, fmt.Errorf("--iptables-backend %q: must be auto, legacy or nft", b)
	}
	legacy := tools("legacy", v6)
	if out, err := exec.CommandContext(ctx, legacy.Save).Output(); err == nil && hasRules(string(out)) {
		return legacy, nil
	}
	nft := tools("nft", v6)
	if _, err := exec.LookPath(nft.Restore); err == nil {
		if err := exec.CommandContext(ctx, nft.Save).Run(); err == nil {
			return nft, nil
		}
	}
	plain := tools("", v6)
	if _, err := exec.LookPath(plain.Restore); err != nil {
		return plain, fmt.Errorf("no iptables binaries found: %w", err)
	}
	return plain, nil
}

// hasRules reports whether iptables-save output holds any rule.
func hasRules(save string) bool {
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "-A ") {
			return true
		}
	}
	return false
}

// Apply installs o's rules in the current network namespace: any
// capture rules already there removed first (Remove), then each family's
// rules with one iptables-restore --noflush (so the tables' other rules
// stay).
func Apply(ctx context.Context, o Options, b Backend) error {
	if err := o.Validate(); err != nil {
		return err
	}
	return applyRules(ctx, Build(o), b, o.EnableIPv6)
}

// applyRules installs each family's rules (IPv6 only when ipv6) with one
// iptables-restore --noflush, after removing any capture already there.
func applyRules(ctx context.Context, rules Rules, b Backend, ipv6 bool) error {
	for _, fam := range []struct {
		v6    bool
		rules []Rule
	}{{false, rules.V4}, {true, rules.V6}} {
		if fam.v6 && !ipv6 {
			continue
		}
		t, err := Detect(ctx, b, fam.v6)
		if err != nil {
			return err
		}
		if err := remove(ctx, t); err != nil {
			return err
		}
		if len(fam.rules) == 0 {
			continue
		}
		if err := run(ctx, t.Restore, Restore(fam.rules), "--noflush"); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes the capture: every rule of the built-in chains jumping
// to an ISTIO_ chain, then every ISTIO_ chain (flushed, then deleted), in
// the nat and mangle tables of each family whose binaries are there.
func Remove(ctx context.Context, b Backend, ipv6 bool) error {
	for _, v6 := range []bool{false, true} {
		if v6 && !ipv6 {
			continue
		}
		t, err := Detect(ctx, b, v6)
		if err != nil {
			return err
		}
		if err := remove(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

func remove(ctx context.Context, t Tools) error {
	for _, table := range []string{"nat", "mangle"} {
		out, err := exec.CommandContext(ctx, t.Save, "-t", table).Output()
		if err != nil {
			return fmt.Errorf("%s -t %s: %w", t.Save, table, err)
		}
		var chains []string
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) > 0 && strings.HasPrefix(f[0], ":ISTIO_"):
				chains = append(chains, f[0][1:])
			case len(f) > 3 && f[0] == "-A" && !strings.HasPrefix(f[1], "ISTIO_") && f[len(f)-2] == "-j" && strings.HasPrefix(f[len(f)-1], "ISTIO_"):
				args := append([]string{"-t", table, "-D"}, f[1:]...)
				if err := run(ctx, t.IPTables, "", args...); err != nil {
					return err
				}
			}
		}
		for _, op := range []string{"-F", "-X"} {
			for _, c := range chains {
				if err := run(ctx, t.IPTables, "", "-t", table, op, c); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// run runs one iptables binary with stdin, its output in the error.
func run(ctx context.Context, bin, stdin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
