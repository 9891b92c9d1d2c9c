package xdsclient

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/pkg/proxy/router"
)

// vhdsProxy compiles routes as the proxy does: each listener of these
// tests stands for a connection manager routing with the route
// configuration of its own name; each such configuration compiles into a
// router table, with its VHDS virtual hosts when it has vhds, and is
// served only once its first VHDS answer came (until then it warms).
type vhdsProxy struct {
	mu    sync.Mutex
	views []vhdsApplied
}

type vhdsApplied struct {
	res     Resources
	tables  map[string]*router.Table
	warming []string
}

func (p *vhdsProxy) apply(r Resources) (Dependencies, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var prev map[string]*router.Table
	if len(p.views) > 0 {
		prev = p.views[len(p.views)-1].tables
	}
	deps := Dependencies{Routes: slices.Sorted(maps.Keys(r.Items[ListenerType]))}
	byConfig := r.VirtualHostsByConfig()
	out := vhdsApplied{res: r, tables: map[string]*router.Table{}}
	for _, name := range deps.Routes {
		m, ok := r.Items[RouteType][name]
		if !ok {
			out.warming = append(out.warming, "route "+name)
			continue
		}
		rc := m.(*route.RouteConfiguration)
		var vhosts []*route.VirtualHost
		if rc.Vhds != nil {
			deps.VirtualHosts = append(deps.VirtualHosts, name)
			vhosts = byConfig[name]
		}
		t, err := router.CompileWith(router.CompileOptions{Config: rc, VHDSResolved: rc.Vhds != nil, VHDS: vhosts, Previous: prev[name]})
		if err != nil {
			return Dependencies{}, err
		}
		if rc.Vhds != nil && !r.VHDSAnswered[name] {
			out.warming = append(out.warming, "virtual hosts "+name)
			continue
		}
		out.tables[name] = t
	}
	p.views = append(p.views, out)
	return deps, nil
}

func (p *vhdsProxy) last() vhdsApplied {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.views) == 0 {
		return vhdsApplied{}
	}
	return p.views[len(p.views)-1]
}

// describe is the newest view in short: each served table's virtual
// hosts in order, then what warms.
func (a vhdsApplied) describe() string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(a.tables)) {
		parts = append(parts, name+"=["+strings.Join(a.tables[name].VirtualHostNames(), " ")+"]")
	}
	if len(a.warming) > 0 {
		parts = append(parts, "warming="+strings.Join(a.warming, ","))
	}
	return strings.Join(parts, " ")
}

func (p *vhdsProxy) want(t *testing.T, what, want string) vhdsApplied {
	t.Helper()
	var got vhdsApplied
	eventually(t, what, func() error {
		got = p.last()
		if d := got.describe(); d != want {
			return fmt.Errorf("view %q, want %q", d, want)
		}
		return nil
	})
	return got
}

func startVHDSClient(t *testing.T, addr string) *vhdsProxy {
	p := &vhdsProxy{}
	startClientWith(t, Options{Address: addr}, p.apply)
	return p
}

func vhost(name, domain string) *route.VirtualHost {
	return &route.VirtualHost{Name: name, Domains: []string{domain}, Routes: []*route.Route{{
		Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
		Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 200}}}}}
}

// routeConfig is a route configuration with one virtual host of its own
// ("local", domain "*") and, when vhds, VHDS over ADS.
func routeConfig(name string, vhds bool) *route.RouteConfiguration {
	rc := &route.RouteConfiguration{Name: name, VirtualHosts: []*route.VirtualHost{vhost("local", "*")}}
	if vhds {
		rc.Vhds = &route.Vhds{ConfigSource: adsSource()}
	}
	return rc
}

// vhdsWorld: listener r1 routing with r1, which has vhds, and its VHDS
// virtual hosts r1/b and r1/a (sent in that order by name: a, b), plus
// one of another namespace.
func vhdsWorld() map[string]map[string]proto.Message {
	return map[string]map[string]proto.Message{
		ListenerType: {"r1": &listener.Listener{Name: "r1"}},
		RouteType:    {"r1": routeConfig("r1", true)},
		VirtualHostType: {"r1/b": vhost("r1/b", "b.example"), "r1/a": vhost("r1/a", "a.example"),
			"other/x": vhost("other/x", "x.example")},
	}
}

// allAcked waits until every response sent was ACKed; it returns how
// many were sent.
func (s *vhdsADS) allAcked(t *testing.T) int {
	t.Helper()
	var n int
	eventually(t, "every response ACKed", func() error {
		acked := map[string]bool{}
		for _, r := range s.requests() {
			if r.ResponseNonce != "" && r.ErrorDetail == nil {
				acked[r.ResponseNonce] = true
			}
		}
		all := s.sentSince(0)
		for _, x := range all {
			if !acked[x.nonce] {
				return fmt.Errorf("response %s (%s) not ACKed", x.nonce, x.typeURL)
			}
		}
		n = len(all)
		return nil
	})
	return n
}

// The client subscribes to a route configuration's VHDS by its name only
// once it accepted the configuration, and its table is the configuration's
// own virtual hosts followed by the VHDS ones by name.
func TestVHDSSubscribesAfterRDSInOrder(t *testing.T) {
	s := startVHDSServer(t, "127.0.0.1:0", vhdsWorld())
	p := startVHDSClient(t, s.addr)
	v := p.want(t, "the merged table", "r1=[local r1/a r1/b]")
	s.allAcked(t)
	if got := slices.Sorted(maps.Keys(v.res.Items[VirtualHostType])); !slices.Equal(got, []string{"r1/a", "r1/b"}) {
		t.Errorf("virtual hosts held %v, want r1/a r1/b", got)
	}
	if got := v.tables["r1"].VirtualHost("a.example"); got == nil || got.Name != "r1/a" {
		t.Errorf("a.example routes to %v, want the VHDS virtual host r1/a", got)
	}
	// The RDS response carrying r1 was ACKed before the VHDS subscription.
	var rdsNonce string
	for _, x := range s.sentSince(0) {
		if x.typeURL == RouteType && slices.Equal(x.names, []string{"r1"}) {
			rdsNonce = x.nonce
		}
	}
	acked, subscribed := -1, -1
	var vhdsReqs []*discovery.DeltaDiscoveryRequest
	for i, r := range s.requests() {
		if r.TypeUrl == RouteType && r.ResponseNonce == rdsNonce && r.ErrorDetail == nil && acked < 0 {
			acked = i
		}
		if r.TypeUrl == VirtualHostType && r.ResponseNonce == "" {
			vhdsReqs = append(vhdsReqs, r)
			if subscribed < 0 {
				subscribed = i
			}
		}
	}
	if rdsNonce == "" || acked < 0 || subscribed < acked {
		t.Errorf("RDS r1 (nonce %q) ACKed at request %d, VHDS subscribed at %d: want the subscription after", rdsNonce, acked, subscribed)
	}
	if len(vhdsReqs) != 1 || !slices.Equal(vhdsReqs[0].ResourceNamesSubscribe, []string{"r1"}) || len(vhdsReqs[0].ResourceNamesUnsubscribe) != 0 {
		t.Errorf("VHDS subscriptions %v, want one subscribing r1", vhdsReqs)
	}
}

// One changed virtual host comes alone and is the only one compiled; the
// others are kept (the same messages); a removed one goes.
func TestVHDSUpdateAndRemoveOne(t *testing.T) {
	s := startVHDSServer(t, "127.0.0.1:0", vhdsWorld())
	p := startVHDSClient(t, s.addr)
	before := p.want(t, "the merged table", "r1=[local r1/a r1/b]")
	n := s.allAcked(t)

	s.update(func(res map[string]map[string]proto.Message) {
		res[VirtualHostType]["r1/a"] = vhost("r1/a", "a2.example")
	})
	var after vhdsApplied
	eventually(t, "the changed virtual host", func() error {
		after = p.last()
		if tb := after.tables["r1"]; tb == nil || tb.VirtualHost("a2.example") == nil || tb.VirtualHost("a2.example").Name != "r1/a" {
			return fmt.Errorf("a2.example not routed to r1/a: %s", after.describe())
		}
		return nil
	})
	n2 := s.allAcked(t)
	if got := s.sentSince(n); len(got) != 1 || got[0].typeURL != VirtualHostType || !slices.Equal(got[0].names, []string{"r1/a"}) || len(got[0].removed) != 0 {
		t.Errorf("for one changed virtual host the server sent %+v, want one VHDS response with r1/a", got)
	}
	if after.res.Items[VirtualHostType]["r1/b"] != before.res.Items[VirtualHostType]["r1/b"] {
		t.Error("the unchanged r1/b was replaced, not kept")
	}
	if tb := after.tables["r1"]; tb.VirtualHostsCompiled != 1 || tb.VirtualHostsReused != 2 {
		t.Errorf("compiled %d virtual hosts and reused %d, want 1 and 2", tb.VirtualHostsCompiled, tb.VirtualHostsReused)
	}
	if after.tables["r1"].VirtualHost("a.example") != nil && after.tables["r1"].VirtualHost("a.example").Name == "r1/a" {
		t.Error("the old domain of r1/a still routes to it")
	}

	s.update(func(res map[string]map[string]proto.Message) { delete(res[VirtualHostType], "r1/b") })
	v := p.want(t, "the removal", "r1=[local r1/a]")
	s.allAcked(t)
	if got := s.sentSince(n2); len(got) != 1 || !slices.Equal(got[0].removed, []string{"r1/b"}) || len(got[0].names) != 0 {
		t.Errorf("for the removal the server sent %+v, want one VHDS response removing r1/b", got)
	}
	if _, ok := v.res.Items[VirtualHostType]["r1/b"]; ok {
		t.Error("r1/b is still held")
	}
}

// A route configuration that loses its vhds, or goes away, is unsubscribed
// from on VHDS and its virtual hosts forgotten; gaining vhds again
// subscribes again and waits for a new answer.
func TestVHDSUnsubscribesWhenConfigGoes(t *testing.T) {
	s := startVHDSServer(t, "127.0.0.1:0", vhdsWorld())
	p := startVHDSClient(t, s.addr)
	p.want(t, "the merged table", "r1=[local r1/a r1/b]")
	s.allAcked(t)
	unsubscribes := func() int {
		n := 0
		for _, r := range s.requests() {
			if r.TypeUrl == VirtualHostType && slices.Equal(r.ResourceNamesUnsubscribe, []string{"r1"}) && len(r.ResourceNamesSubscribe) == 0 {
				n++
			}
		}
		return n
	}

	s.update(func(res map[string]map[string]proto.Message) { res[RouteType]["r1"] = routeConfig("r1", false) })
	p.want(t, "the table without vhds", "r1=[local]")
	eventually(t, "the VHDS unsubscription", func() error {
		if unsubscribes() != 1 {
			return fmt.Errorf("%d unsubscriptions", unsubscribes())
		}
		return nil
	})
	s.update(func(res map[string]map[string]proto.Message) { res[RouteType]["r1"] = routeConfig("r1", true) })
	p.want(t, "the table with vhds again", "r1=[local r1/a r1/b]")
	s.allAcked(t)

	s.update(func(res map[string]map[string]proto.Message) { delete(res[ListenerType], "r1") })
	eventually(t, "the route configuration and its VHDS unsubscribed", func() error {
		var rds bool
		for _, r := range s.requests() {
			rds = rds || (r.TypeUrl == RouteType && slices.Equal(r.ResourceNamesUnsubscribe, []string{"r1"}))
		}
		if !rds || unsubscribes() != 2 {
			return fmt.Errorf("RDS unsubscribed %v, %d VHDS unsubscriptions", rds, unsubscribes())
		}
		return nil
	})
	// The forgetting shows in the next view handed to the compiler.
	s.update(func(res map[string]map[string]proto.Message) {
		res[ListenerType]["l2"] = &listener.Listener{Name: "l2"}
	})
	eventually(t, "a view without r1's virtual hosts", func() error {
		v := p.last()
		if _, ok := v.res.Items[ListenerType]["l2"]; !ok {
			return fmt.Errorf("no l2 yet")
		}
		if n := len(v.res.Items[VirtualHostType]); n != 0 || v.res.VHDSAnswered["r1"] || v.res.Items[RouteType]["r1"] != nil {
			return fmt.Errorf("%d virtual hosts, r1 answered %v, r1 held %v", n, v.res.VHDSAnswered["r1"], v.res.Items[RouteType]["r1"] != nil)
		}
		return nil
	})
}

// On a new stream the client resubscribes its VHDS namespaces announcing
// the virtual hosts it holds; the new server sends only what differs.
func TestVHDSReconnectSendsInitialVersions(t *testing.T) {
	s := startVHDSServer(t, "127.0.0.1:0", vhdsWorld())
	p := startVHDSClient(t, s.addr)
	before := p.want(t, "the merged table", "r1=[local r1/a r1/b]")
	s.allAcked(t)
	s.stop()

	w := vhdsWorld()
	w[VirtualHostType]["r1/a"] = vhost("r1/a", "a2.example")
	s2 := startVHDSServer(t, s.addr, w)
	var after vhdsApplied
	eventually(t, "the new server's virtual host", func() error {
		after = p.last()
		if tb := after.tables["r1"]; tb == nil || tb.VirtualHost("a2.example").Name != "r1/a" {
			return fmt.Errorf("a2.example not routed to r1/a: %s", after.describe())
		}
		return nil
	})
	s2.allAcked(t)
	var first *discovery.DeltaDiscoveryRequest
	for _, r := range s2.requests() {
		if r.TypeUrl == VirtualHostType {
			first = r
			break
		}
	}
	if first == nil || !slices.Equal(first.ResourceNamesSubscribe, []string{"r1"}) ||
		!slices.Equal(slices.Sorted(maps.Keys(first.InitialResourceVersions)), []string{"r1/a", "r1/b"}) {
		t.Fatalf("first VHDS request on the new stream %v, want r1 subscribed with versions of r1/a and r1/b", first)
	}
	for _, x := range s2.sentSince(0) {
		if x.typeURL == VirtualHostType && !slices.Equal(x.names, []string{"r1/a"}) {
			t.Errorf("the new server sent virtual hosts %v, want only the changed r1/a", x.names)
		}
	}
	if after.res.Items[VirtualHostType]["r1/b"] != before.res.Items[VirtualHostType]["r1/b"] {
		t.Error("r1/b, unchanged, was replaced")
	}
}

// Until the first VHDS answer for a route configuration, even an empty
// one, its table is not served and the proxy warms.
func TestVHDSReadinessWaitsForFirstAnswer(t *testing.T) {
	w := vhdsWorld()
	w[VirtualHostType] = map[string]proto.Message{} // the answer will be empty
	s := startVHDSServer(t, "127.0.0.1:0", w)
	s.hold(true)
	p := startVHDSClient(t, s.addr)
	eventually(t, "the VHDS subscription", func() error {
		for _, r := range s.requests() {
			if r.TypeUrl == VirtualHostType && slices.Equal(r.ResourceNamesSubscribe, []string{"r1"}) {
				return nil
			}
		}
		return fmt.Errorf("no VHDS subscription")
	})
	s.allAcked(t)
	time.Sleep(200 * time.Millisecond)
	if v := p.last(); v.describe() != "warming=virtual hosts r1" || v.res.VHDSAnswered["r1"] {
		t.Errorf("before any VHDS answer the view is %q (answered %v)", v.describe(), v.res.VHDSAnswered["r1"])
	}
	n := len(s.sentSince(0))
	s.hold(false)
	p.want(t, "the table after the empty answer", "r1=[local]")
	if got := s.sentSince(n); len(got) != 1 || got[0].typeURL != VirtualHostType || len(got[0].names)+len(got[0].removed) != 0 {
		t.Errorf("the answer was %+v, want one empty VHDS response", got)
	}
}

// A virtual host the compiler rejects is NACKed naming it; the last good
// virtual hosts stay. Virtual hosts outside every namespace subscribed to
// are ignored.
func TestVHDSBadVirtualHostNacked(t *testing.T) {
	s := startVHDSServer(t, "127.0.0.1:0", vhdsWorld())
	s.everyVirtualHost = true
	p := startVHDSClient(t, s.addr)
	v := p.want(t, "the merged table", "r1=[local r1/a r1/b]")
	s.allAcked(t)
	if _, ok := v.res.Items[VirtualHostType]["other/x"]; ok {
		t.Error("other/x, outside the namespaces subscribed to, was taken")
	}
	n := len(s.sentSince(0))
	bad := vhost("r1/a", "a2.example")
	bad.RequireTls = route.VirtualHost_EXTERNAL_ONLY
	s.update(func(res map[string]map[string]proto.Message) { res[VirtualHostType]["r1/a"] = bad })
	var nonce string
	eventually(t, "the bad virtual host sent", func() error {
		for _, x := range s.sentSince(n) {
			if x.typeURL == VirtualHostType {
				nonce = x.nonce
				return nil
			}
		}
		return fmt.Errorf("not sent")
	})
	ans := s.answerTo(t, nonce)
	if msg := ans.GetErrorDetail().GetMessage(); !strings.Contains(msg, `route config "r1": virtual host "r1/a": require_tls EXTERNAL_ONLY`) {
		t.Errorf("answered with error %q, want the NACK naming r1/a", msg)
	}
	if got := p.last(); got.res.Items[VirtualHostType]["r1/a"] != v.res.Items[VirtualHostType]["r1/a"] || got.describe() != "r1=[local r1/a r1/b]" {
		t.Errorf("after the NACK the view is %q with r1/a replaced %v", got.describe(), got.res.Items[VirtualHostType]["r1/a"] != v.res.Items[VirtualHostType]["r1/a"])
	}
}

// Over SotW a route configuration with vhds is NACKed: VHDS is Delta only.
func TestSotWNacksVHDS(t *testing.T) {
	w := twoClusters("r1", 8080, 8081)
	w.vhds = true
	cp := startControlPlane(t, "127.0.0.1:0", w, serverOpts{})
	p, _ := startClient(t, Options{Address: cp.addr, Protocol: ProtocolSotW})
	eventually(t, "the RDS NACK", func() error {
		for _, r := range cp.sotwRequests() {
			if r.TypeUrl == RouteType && r.ResponseNonce != "" && r.ErrorDetail.GetMessage() == `route config "r1": vhds needs the delta protocol` {
				return nil
			}
		}
		return fmt.Errorf("no RDS NACK")
	})
	if got := describe(p.last()); got != "routes= svc=one:8080 svc2=one:8081" {
		t.Errorf("after the NACK the view is %q, want no route configuration", got)
	}
}
