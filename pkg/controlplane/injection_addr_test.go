package controlplane

import "testing"

// TestInjectedXDSAddress: without --injection-xds-address, injected pods
// and deployed gateways dial the Service of the control plane's own
// revision (istiod-<rev>.<namespace>.svc:15012, as Istio's template's
// discoveryAddress), and the xDS serving certificate names that host.
func TestInjectedXDSAddress(t *testing.T) {
	for _, c := range []struct {
		o        InjectionOptions
		addr     string
		certHost string
	}{
		{InjectionOptions{}, "istiod.istio-system.svc:15012", "istiod.istio-system.svc"},
		{InjectionOptions{Revision: "default"}, "istiod.istio-system.svc:15012", "istiod.istio-system.svc"},
		{InjectionOptions{Revision: "canary"}, "istiod-canary.istio-system.svc:15012", "istiod-canary.istio-system.svc"},
		{InjectionOptions{Revision: "canary", Namespace: "mesh"}, "istiod-canary.mesh.svc:15012", "istiod-canary.mesh.svc"},
		{InjectionOptions{Revision: "canary", XDSAddress: "xds.example:443"}, "xds.example:443", "xds.example"},
	} {
		if got := c.o.xdsAddress(); got != c.addr {
			t.Errorf("%+v: xDS address %q, want %q", c.o, got, c.addr)
		}
		if got := injectedXDSHost(c.o); got != c.certHost {
			t.Errorf("%+v: certificate host %q, want %q", c.o, got, c.certHost)
		}
	}
}
