package capture

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// istioTestOptions are Istio's constructTestConfig
// (tools/istio-iptables/pkg/capture/run_test.go): no inbound or outbound
// capture unless a case sets it.
func istioTestOptions() Options {
	o := Defaults()
	o.ProxyGID = "1337"
	o.OutboundIPRangesInclude, o.InboundPortsInclude = "", ""
	return o
}

// TestRulesMatchIstioGoldens: the rules of each of Istio's REDIRECT-mode
// test cases (run_test.go getCommonTestCases, the same settings) are
// Istio's golden iptables-restore inputs, line for line
// (testdata/*.golden, derived from Istio's testdata of the same name).
// Cases with DNS capture, TPROXY or owner group filters are Istio
// features sluice does not offer.
func TestRulesMatchIstioGoldens(t *testing.T) {
	cases := map[string]func(o *Options){
		"empty":                  func(o *Options) {},
		"inbound-ports-include":  func(o *Options) { o.InboundPortsInclude = "32000,31000" },
		"inbound-ports-wildcard": func(o *Options) { o.InboundPortsInclude = "*" },
		"ipnets":                 func(o *Options) { o.OutboundIPRangesInclude = "10.0.0.0/8" },
		"ipnets-with-kube-virt-interfaces": func(o *Options) {
			o.RerouteVirtualInterfaces, o.OutboundIPRangesInclude = "eth1,eth2", "10.0.0.0/8"
		},
		"kube-virt-interfaces":     func(o *Options) { o.RerouteVirtualInterfaces, o.OutboundIPRangesInclude = "eth1,eth2", "*" },
		"ipv6-empty-inbound-ports": func(o *Options) { o.EnableIPv6 = true },
		"ipv6-inbound-ports":       func(o *Options) { o.InboundPortsInclude, o.EnableIPv6 = "4000,5000", true },
		"ipv6-virt-interfaces": func(o *Options) {
			o.InboundPortsInclude, o.RerouteVirtualInterfaces, o.EnableIPv6 = "4000,5000", "eth0,eth1", true
		},
		"ipv6-ipnets": func(o *Options) {
			o.InboundPortsInclude, o.InboundPortsExclude, o.RerouteVirtualInterfaces = "4000,5000", "6000,7000,", "eth0,eth1"
			o.OutboundIPRangesExclude, o.OutboundIPRangesInclude, o.EnableIPv6 = "2001:db8::/32", "2001:db8::/32", true
		},
		"ipv6-uid-gid": func(o *Options) {
			o.InboundPortsInclude, o.InboundPortsExclude, o.RerouteVirtualInterfaces = "4000,5000", "6000,7000", "eth0,eth1"
			o.ProxyGID, o.ProxyUID, o.EnableIPv6 = "1,2", "3,4", true
			o.OutboundIPRangesExclude, o.OutboundIPRangesInclude = "2001:db8::/32", "2001:db8::/32"
		},
		"ipv6-outbound-ports":     func(o *Options) { o.OutboundPortsInclude, o.EnableIPv6 = "32000,31000", true },
		"outbound-ports-include":  func(o *Options) { o.OutboundPortsInclude = "32000,31000" },
		"basic-exclude-nic":       func(o *Options) { o.ExcludeInterfaces = "not-istio-nic" },
		"drop-invalid":            func(o *Options) { o.DropInvalid = true },
		"host-ipv4-loopback-cidr": func(o *Options) { o.HostIPv4LoopbackCidr = "127.0.0.1/8" },
	}
	for name, set := range cases {
		t.Run(name, func(t *testing.T) {
			o := istioTestOptions()
			set(&o)
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			rules := Build(o)
			got := Restore(rules.V4)
			if o.EnableIPv6 {
				got += "# IPv6\n" + Restore(rules.V6)
			}
			compareGolden(t, name, got)
		})
	}
}

// compareGolden compares got with testdata/<name>.golden, whose header
// lines ("# Derived ...", "# its ...") are not rules.
func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name+".golden"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if !strings.HasPrefix(l, "# Derived") && !strings.HasPrefix(l, "# its") {
			want = append(want, l)
		}
	}
	if g := strings.TrimSpace(got); g != strings.Join(want, "\n") {
		t.Errorf("rules differ from Istio's golden\n got:\n%s\nwant:\n%s", g, strings.Join(want, "\n"))
	}
}

// TestValidate: what istio-iptables refuses, refused naming the flag;
// TPROXY, which sluice does not implement, refused by name.
func TestValidate(t *testing.T) {
	for _, c := range []struct {
		set  func(o *Options)
		want string
	}{
		{func(o *Options) { o.InterceptionMode = "TPROXY" }, "-m TPROXY: not supported"},
		{func(o *Options) { o.InterceptionMode = "X" }, `-m "X"`},
		{func(o *Options) { o.ProxyPort = "x" }, `-p "x": not a port`},
		{func(o *Options) { o.InboundPortsExclude = "80,http" }, `-d "80,http": "http" is not a port`},
		{func(o *Options) { o.OutboundPortsInclude = "*" }, `-q "*"`},
		{func(o *Options) { o.OutboundIPRangesInclude = "10.0.0.0/33" }, `-i "10.0.0.0/33"`},
		{func(o *Options) { o.OutboundIPRangesExclude = "*" }, `-x "*"`},
		{func(o *Options) { o.ProxyUID = "istio-proxy" }, `-u "istio-proxy": not a numeric id`},
		{func(o *Options) { o.HostIPv4LoopbackCidr = "10.0.0.0/8" }, "loopback"},
	} {
		o := Defaults()
		c.set(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err %v, want %q", err, c.want)
		}
	}
	o := Defaults()
	if err := o.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	o.InterceptionMode = "NONE"
	if r := Build(o); len(r.V4)+len(r.V6) != 0 {
		t.Errorf("-m NONE built rules: %v", r)
	}
}
