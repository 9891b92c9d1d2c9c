package router

import (
	"fmt"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// CONNECT termination, as Envoy does it for a route whose upgrade_configs
// enable CONNECT with a connect_config
// (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/http/upgrades#tunneling-tcp-over-http):
// the route is matched by connect_matcher, the proxy answers 200 and the
// connection's bytes go as TCP to a host of the route's cluster.

// compileConnectConfig checks one route upgrade config for CONNECT. A
// CONNECT upgrade must carry a connect_config (without one Envoy forwards
// the CONNECT request upstream, which sluice does not do); the
// connect_config's fields change the tunnel and none is implemented, so
// each set one is refused by name.
func compileConnectConfig(act *Action, u *route.RouteAction_UpgradeConfig) error {
	isConnect := strings.EqualFold(u.UpgradeType, "CONNECT")
	if u.ConnectConfig != nil && !isConnect {
		return fmt.Errorf("connect_config on upgrade type %q (only CONNECT has one)", u.UpgradeType)
	}
	if !isConnect {
		return nil
	}
	if u.ConnectConfig == nil {
		return fmt.Errorf("CONNECT without connect_config (forwarding CONNECT upstream) is not supported")
	}
	if bad := xdsfields.Unsupported(u.ConnectConfig, nil); len(bad) > 0 {
		return fmt.Errorf("connect_config: %s: not supported", strings.Join(bad, ", "))
	}
	act.Connect = u.Enabled == nil || u.Enabled.Value
	return nil
}

// checkConnectRoute ties connect_matcher and CONNECT termination together:
// only a connect_matcher route sees CONNECT requests, so a CONNECT upgrade
// elsewhere could never apply, and a connect_matcher route that forwards
// must terminate CONNECT (Envoy would otherwise send the CONNECT request
// itself upstream).
func checkConnectRoute(cr *Route) error {
	isConnectRoute := cr.path.kind == 'c'
	switch {
	case cr.Action.Connect && !isConnectRoute:
		return fmt.Errorf("upgrade_configs CONNECT on a route without connect_matcher: no CONNECT request reaches it")
	case isConnectRoute && cr.Action.Kind == Forward && !cr.Action.Connect:
		return fmt.Errorf("connect_matcher route forwarding without upgrade_configs CONNECT with connect_config (forwarding CONNECT upstream) is not supported")
	}
	return nil
}
