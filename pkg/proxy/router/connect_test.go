package router

import (
	"net/http/httptest"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func connectMatch() *route.RouteMatch {
	return &route.RouteMatch{PathSpecifier: &route.RouteMatch_ConnectMatcher_{ConnectMatcher: &route.RouteMatch_ConnectMatcher{}}}
}

func connectFwd(name, cluster string, cc *route.RouteAction_UpgradeConfig_ConnectConfig) *route.Route {
	r := fwd(name, cluster, connectMatch())
	r.GetRoute().UpgradeConfigs = []*route.RouteAction_UpgradeConfig{{UpgradeType: "CONNECT", ConnectConfig: cc}}
	return r
}

// TestConnectMatching: connect_matcher routes take CONNECT requests and
// nothing else; other routes never take a CONNECT.
func TestConnectMatching(t *testing.T) {
	tbl, err := Compile(&route.RouteConfiguration{Name: "t", VirtualHosts: []*route.VirtualHost{
		{Name: "db", Domains: []string{"db:5432"}, Routes: []*route.Route{
			fwd("plain", "web", prefix("/")),
			connectFwd("tunnel", "outbound|5432||db", &route.RouteAction_UpgradeConfig_ConnectConfig{}),
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	conn := httptest.NewRequest("CONNECT", "http://db:5432", nil)
	conn.Host, conn.RequestURI, conn.URL.Path = "db:5432", "db:5432", ""
	if r := tbl.Match(conn); r == nil || r.Name != "tunnel" || !r.Action.Connect || r.Action.Cluster != "outbound|5432||db" {
		t.Errorf("CONNECT matched %+v, want the tunnel route", r)
	}
	get := httptest.NewRequest("GET", "http://db:5432/", nil)
	if r := tbl.Match(get); r == nil || r.Name != "plain" {
		t.Errorf("GET matched %+v, want the plain route", r)
	}
}

// TestConnectNACK: what the proxy cannot do with CONNECT is refused by name.
func TestConnectNACK(t *testing.T) {
	cases := []struct {
		want string
		r    *route.Route
	}{
		{"proxy_protocol_config", connectFwd("r", "c", &route.RouteAction_UpgradeConfig_ConnectConfig{
			ProxyProtocolConfig: &core.ProxyProtocolConfig{Version: core.ProxyProtocolConfig_V2}})},
		{"allow_post", connectFwd("r", "c", &route.RouteAction_UpgradeConfig_ConnectConfig{AllowPost: true})},
		{"without connect_config", connectFwd("r", "c", nil)},
		{"connect_matcher route forwarding", fwd("r", "c", connectMatch())},
		{"without connect_matcher", func() *route.Route {
			r := connectFwd("r", "c", &route.RouteAction_UpgradeConfig_ConnectConfig{})
			r.Match = prefix("/")
			return r
		}()},
		{"only CONNECT", func() *route.Route {
			r := fwd("r", "c", prefix("/"))
			r.GetRoute().UpgradeConfigs = []*route.RouteAction_UpgradeConfig{{UpgradeType: "websocket",
				ConnectConfig: &route.RouteAction_UpgradeConfig_ConnectConfig{}, Enabled: wrapperspb.Bool(true)}}
			return r
		}()},
	}
	for _, c := range cases {
		_, err := Compile(&route.RouteConfiguration{Name: "t", VirtualHosts: []*route.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*route.Route{c.r}}}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v", c.want, err)
		}
	}
}
