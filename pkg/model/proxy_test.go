package model

import (
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/pkg/version"
)

// TestAdminAddressMetadata: a proxy announces its admin address as
// SLUICE_ADMIN_ADDRESS (for `sluice status`), and the control plane reads
// it back; a proxy without one announces nothing.
func TestAdminAddressMetadata(t *testing.T) {
	n := (&Proxy{Type: Sidecar, Name: "a", Namespace: "default", AdminAddress: "127.0.0.1:15000"}).Node()
	if got := n.GetMetadata().GetFields()["SLUICE_ADMIN_ADDRESS"].GetStringValue(); got != "127.0.0.1:15000" {
		t.Errorf("node metadata SLUICE_ADMIN_ADDRESS %q", got)
	}
	p, err := ProxyFromNode(n)
	if err != nil || p.AdminAddress != "127.0.0.1:15000" {
		t.Errorf("read back %+v %v", p, err)
	}
	if _, ok := (&Proxy{Type: Sidecar, Name: "a"}).Node().GetMetadata().GetFields()[MetaAdminAddress]; ok {
		t.Errorf("an empty admin address is announced")
	}
}

// TestIstioVersionMetadata: a proxy announces sluice's version as
// ISTIO_VERSION, as Istio's agent does, and the control plane reads it.
func TestIstioVersionMetadata(t *testing.T) {
	n := (&Proxy{Type: Sidecar, Name: "a", Namespace: "default"}).Node()
	got := n.GetMetadata().GetFields()[MetaIstioVersion].GetStringValue()
	if got == "" || got != version.Get() {
		t.Errorf("node metadata ISTIO_VERSION %q, want %q", got, version.Get())
	}
	p, err := ProxyFromNode(n)
	if err != nil || p.IstioVersion != got {
		t.Errorf("read back %+v %v", p, err)
	}
	n = (&Proxy{Type: Sidecar, Name: "a", IstioVersion: "1.24.0"}).Node()
	if got := n.GetMetadata().GetFields()[MetaIstioVersion].GetStringValue(); got != "1.24.0" {
		t.Errorf("an explicit version is announced as %q", got)
	}
}

// TestInterceptionModeRoundTrip: INTERCEPTION_MODE travels in the node
// metadata; REDIRECT with local-mode outbound addresses, on a router, or
// an unknown mode (TPROXY) is refused naming the key.
func TestInterceptionModeRoundTrip(t *testing.T) {
	p, err := ProxyFromNode((&Proxy{Type: Sidecar, Name: "a", Namespace: "default", InterceptionMode: InterceptionRedirect}).Node())
	if err != nil || !p.Captured() {
		t.Fatalf("REDIRECT: captured=%v err=%v", p != nil && p.Captured(), err)
	}
	if p, err := ProxyFromNode((&Proxy{Type: Sidecar, Name: "a"}).Node()); err != nil || p.Captured() || p.InterceptionMode != "" {
		t.Fatalf("no mode: %+v %v", p, err)
	}
	for name, bad := range map[string]*Proxy{
		"outbound address": {Type: Sidecar, Name: "a", InterceptionMode: InterceptionRedirect, OutboundAddress: "127.0.0.1:15001"},
		"outbound tcp ip":  {Type: Sidecar, Name: "a", InterceptionMode: InterceptionRedirect, OutboundTCPIP: "127.0.0.2"},
		"router":           {Type: Router, Name: "a", InterceptionMode: InterceptionRedirect},
		"tproxy":           {Type: Sidecar, Name: "a", InterceptionMode: "TPROXY"},
	} {
		if _, err := ProxyFromNode(bad.Node()); err == nil || !strings.Contains(err.Error(), MetaInterceptionMode) {
			t.Errorf("%s: err = %v, want one naming %s", name, err, MetaInterceptionMode)
		}
	}
}
