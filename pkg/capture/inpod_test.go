package capture

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/netnstest"
)

// TestInpodRulesMatchIstioGoldens: the in-pod rules of each of
// istio-cni's test cases (cni/pkg/iptables/common_test.go
// GetCommonInPodTestCases, DNS capture off; constructTestConfig's probe
// addresses) are Istio's golden iptables-restore inputs, line for line.
func TestInpodRulesMatchIstioGoldens(t *testing.T) {
	cases := map[string]func(o *InpodOptions){
		"default":                        func(o *InpodOptions) {},
		"ingress":                        func(o *InpodOptions) { o.IngressMode = true },
		"virtual-interfaces":             func(o *InpodOptions) { o.VirtualInterfaces = []string{"fake1s0f0", "fake1s0f1"} },
		"ingress-and-virtual-interfaces": func(o *InpodOptions) { o.IngressMode, o.VirtualInterfaces = true, []string{"fake1s0f0", "fake1s0f1"} },
	}
	for name, set := range cases {
		for _, v6 := range []bool{false, true} {
			file := "inpod-" + name
			if v6 {
				file += "-ipv6"
			}
			t.Run(file, func(t *testing.T) {
				o := DefaultInpodOptions()
				o.HostProbeV6SNAT = netip.MustParseAddr("e9ac:1e77:90ca:399f:4d6d:ece2:2f9b:3164")
				o.EnableIPv6 = v6
				set(&o)
				rules := BuildInpod(o)
				got := Restore(rules.V4)
				if v6 {
					got += "# IPv6\n" + Restore(rules.V6)
				}
				compareGolden(t, file, got)
			})
		}
	}
}

// TestApplyInpodInNamespace installs the ambient in-pod capture in a
// fresh network namespace: every rule BuildInpod makes is there (nat and
// mangle), with the mark rule and the local route of table 100; applying
// again does not duplicate them; RemoveInpod takes all of it away.
func TestApplyInpodInNamespace(t *testing.T) {
	netnstest.Require(t, "iptables")
	ns := netnstest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := DefaultInpodOptions()
	want := map[string]int{}
	for _, r := range BuildInpod(o).V4 {
		want[r.Table+" "+r.Chain]++
	}
	ip := func(args ...string) string {
		out, err := ns.Command(ctx, "ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	check := func(when string, installed bool) {
		t.Helper()
		tl, err := Detect(ctx, "auto", false)
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"nat", "mangle"} {
			got := ruleCount(save(t, ns, tl.Save, table))
			for key, n := range want {
				tbl, chain, _ := strings.Cut(key, " ")
				if tbl != table {
					continue
				}
				if installed && got[chain] != n || !installed && strings.HasPrefix(chain, "ISTIO_") && got[chain] != 0 {
					t.Errorf("%s: %s %s: %d rules", when, table, chain, got[chain])
				}
			}
		}
		rules, route := ip("rule"), ip("route", "show", "table", "100")
		hasRule := strings.Contains(rules, "fwmark 0x111/0xfff lookup 100")
		hasRoute := strings.Contains(route, "local default dev lo")
		if hasRule != installed || hasRoute != installed || strings.Count(rules, "fwmark 0x111") > 1 {
			t.Errorf("%s: ip rule:\n%s\nip route table 100:\n%s", when, rules, route)
		}
	}
	for _, when := range []string{"applied", "applied again"} {
		if err := ns.Do(func() error { return ApplyInpod(ctx, o, "auto") }); err != nil {
			t.Fatal(err)
		}
		check(when, true)
	}
	if err := ns.Do(func() error { return RemoveInpod(ctx, "auto", false) }); err != nil {
		t.Fatal(err)
	}
	check("removed", false)
}
