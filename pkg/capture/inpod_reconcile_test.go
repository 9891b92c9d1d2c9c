package capture

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/netnstest"
)

// TestReconcileInpod: in a fresh namespace the rules are installed;
// again with the same options nothing is touched; other options, a rule
// added to the capture or one deleted from it, and the rules are
// installed anew (and then match again).
func TestReconcileInpod(t *testing.T) {
	netnstest.Require(t, "iptables")
	ns := netnstest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o := DefaultInpodOptions()
	reconcile := func(when string, o InpodOptions, want bool) {
		t.Helper()
		var applied bool
		if err := ns.Do(func() (err error) { applied, err = ReconcileInpod(ctx, o, "auto"); return }); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if applied != want {
			t.Errorf("%s: applied %v, want %v", when, applied, want)
		}
	}
	iptables := func(args ...string) {
		t.Helper()
		if out, err := ns.Command(ctx, "iptables", args...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v: %s", args, err, out)
		}
	}
	reconcile("fresh namespace", o, true)
	reconcile("same options", o, false)
	ingress := o
	ingress.IngressMode = true
	reconcile("ingress mode", ingress, true)
	reconcile("ingress mode again", ingress, false)
	reconcile("back to the defaults", o, true)
	iptables("-t", "nat", "-A", ChainInpodOutput, "-p", "udp", "-j", "ACCEPT")
	reconcile("a rule added", o, true)
	reconcile("after the rule added", o, false)
	iptables("-t", "mangle", "-F", ChainInpodPrerouting)
	reconcile("a chain flushed", o, true)
	reconcile("after the chain flushed", o, false)
}
