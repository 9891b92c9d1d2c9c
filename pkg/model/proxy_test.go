package model

import (
	"slices"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/sluice-mesh/sluice/pkg/config"
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

// TestZtunnelNodeID: Istio's ztunnel node ID
// (ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local) is read as a Ztunnel;
// an unknown type is refused naming the three; and a ztunnel is affected
// by every change (it holds the whole workload API).
func TestZtunnelNodeID(t *testing.T) {
	p, err := ProxyFromNode(&core.Node{Id: "ztunnel~10.0.0.100~ztunnel-abc.istio-system~istio-system.svc.cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Type != Ztunnel || p.Name != "ztunnel-abc" || p.Namespace != "istio-system" || !slices.Equal(p.IPs, []string{"10.0.0.100"}) {
		t.Errorf("read %+v", p)
	}
	if p.NodeID() != p.ID {
		t.Errorf("NodeID %q, announced %q", p.NodeID(), p.ID)
	}
	_, err = ProxyFromNode(&core.Node{Id: "waypoint~10.0.0.1~w.ns~ns.svc.cluster.local"})
	if err == nil || !strings.Contains(err.Error(), `type "waypoint" is not sidecar, router or ztunnel`) {
		t.Errorf("waypoint: %v", err)
	}
	pc := NewPushContext(PushOptions{Version: "1"})
	ch := Change{Configs: map[ConfigKey]struct{}{{Kind: config.KindSidecar, Namespace: "shop", Name: "x"}: {}}}
	if !pc.AffectsProxy(p, ch) || !pc.InboundDependsOn(p, ch, pc) {
		t.Error("a ztunnel is not pushed on a change")
	}
	if pc.AffectsProxy(&Proxy{Type: Router, Namespace: "shop"}, ch) {
		t.Error("a Sidecar resource affects a router (the change is not one a ztunnel-only rule would show)")
	}
}
