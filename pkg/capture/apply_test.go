package capture

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/netnstest"
)

// save is iptables-save of one table inside ns.
func save(t *testing.T, ns *netnstest.NS, bin, table string) string {
	t.Helper()
	var out []byte
	err := ns.Do(func() error {
		var err error
		out, err = exec.Command(bin, "-t", table).Output()
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return string(out)
}

// ruleCount counts the rules of each chain in iptables-save output.
func ruleCount(save string) map[string]int {
	n := map[string]int{}
	for _, l := range strings.Split(save, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "-A" {
			n[f[1]]++
		}
	}
	return n
}

// TestApplyInNamespace installs the default capture (IPv4 and IPv6) in a
// fresh network namespace with each backend: every rule Build makes is
// there, per chain; applying again replaces them (no duplicates); Remove
// leaves no ISTIO_ chain and no jump to one; auto finds the backend
// already holding rules.
func TestApplyInNamespace(t *testing.T) {
	netnstest.Require(t)
	for _, backend := range []Backend{"legacy", "nft"} {
		t.Run(string(backend), func(t *testing.T) {
			if _, err := exec.LookPath("iptables-" + string(backend) + "-restore"); err != nil {
				netnstest.Require(t, "iptables-"+string(backend)+"-restore")
			}
			ns := netnstest.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			o := Defaults()
			o.EnableIPv6 = true
			o.InboundPortsExclude = "15090,15021,15020"
			want := map[bool]map[string]int{false: {}, true: {}}
			rules := Build(o)
			for _, r := range rules.V4 {
				want[false][r.Chain]++
			}
			for _, r := range rules.V6 {
				want[true][r.Chain]++
			}
			apply := func() {
				if err := ns.Do(func() error { return Apply(ctx, o, backend) }); err != nil {
					t.Fatal(err)
				}
			}
			check := func(when string) {
				for _, v6 := range []bool{false, true} {
					tl := tools(string(backend), v6)
					got := ruleCount(save(t, ns, tl.Save, "nat"))
					for chain, n := range want[v6] {
						if got[chain] != n {
							t.Errorf("%s: %s nat %s: %d rules, want %d", when, tl.Save, chain, got[chain], n)
						}
					}
				}
			}
			apply()
			check("applied")
			apply()
			check("applied twice")
			var auto Tools
			if err := ns.Do(func() (err error) { auto, err = Detect(ctx, "auto", false); return }); err != nil {
				t.Fatal(err)
			}
			if wantAuto := tools(string(backend), false); auto != wantAuto {
				t.Errorf("auto with %s rules present: %+v, want %+v", backend, auto, wantAuto)
			}
			if err := ns.Do(func() error { return Remove(ctx, backend, true) }); err != nil {
				t.Fatal(err)
			}
			for _, v6 := range []bool{false, true} {
				tl := tools(string(backend), v6)
				if s := save(t, ns, tl.Save, "nat"); strings.Contains(s, "ISTIO_") {
					t.Errorf("%s after Remove:\n%s", tl.Save, s)
				}
			}
		})
	}
}
