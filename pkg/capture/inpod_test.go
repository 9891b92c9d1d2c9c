package capture

import (
	"net/netip"
	"testing"
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
