package xdsclient

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// VHDS, Envoy's Virtual Host Discovery Service
// (docs: configuration/http/http_conn_man/vhds; source/common/router/vhds.cc
// and route_config_update_receiver_impl.cc), as the client follows it:
//
//   - An accepted route configuration with vhds (the compiler names it in
//     Dependencies.VirtualHosts) is subscribed to by its name on the
//     VirtualHost type, over Delta only. The name is a namespace: the
//     control plane sends every VirtualHost named "<route config>/<any>"
//     (Envoy's SubscriptionOptions.use_namespace_matching_; the namespace
//     of a name is what precedes its last "/", watch_map.cc
//     namespaceFromName). A VirtualHost resource outside every namespace
//     subscribed to is ignored, as Delta ignores names not subscribed to
//     (handleDelta): it may be one the client unsubscribed from a moment
//     ago, which is no error of the control plane's.
//   - The view holds the virtual hosts by resource name (the message's own
//     name equals it, decodeDelta); removals come by name.
//   - A VirtualHost response answers every namespace subscribed when it
//     arrives: Resources.VHDSAnswered. Envoy's route configuration is
//     initialised on its VhdsSubscription's first update (vhds.cc,
//     init_target_); the control plane answers every new VirtualHost
//     subscription, with an empty response when it has no virtual host for
//     it (issue 10's contract). A Delta response does not say which
//     subscription it answers, so one that was on its way before a
//     subscription answers it too. (Envoy's delta WatchMap hands a
//     namespace watch only updates in its namespace, so an Envoy with none
//     waits for initial_fetch_timeout; sluice does not wait.)
//   - A route configuration unsubscribed from, or that lost its vhds,
//     is unsubscribed from on VHDS too, and its virtual hosts forgotten.
//   - Over SotW a route configuration with vhds is NACKed (vhds.cc:
//     "VHDS only supports Delta xDS").

// VirtualHostConfig is the route configuration a VHDS resource name
// belongs to: what precedes its last "/" ("" when it has none).
func VirtualHostConfig(name string) string {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return ""
	}
	return name[:i]
}

// VirtualHostsByConfig groups the view's VHDS virtual hosts by the route
// configuration they belong to, each group sorted by name (Envoy rebuilds
// the route table from a std::map of them, rebuildRouteConfig). The
// messages are the view's own: nobody may change them.
func (r Resources) VirtualHostsByConfig() map[string][]*route.VirtualHost {
	held := r.Items[VirtualHostType]
	if len(held) == 0 {
		return nil
	}
	out := map[string][]*route.VirtualHost{}
	for _, name := range slices.Sorted(maps.Keys(held)) {
		rc := VirtualHostConfig(name)
		out[rc] = append(out[rc], held[name].(*route.VirtualHost))
	}
	return out
}

// MergedRouteConfig is a route configuration as the proxy uses it: its
// own virtual hosts followed by vhosts, its VHDS ones (a copy: for
// /config_dump, which shows Envoy's merged route configuration too).
func MergedRouteConfig(rc *route.RouteConfiguration, vhosts []*route.VirtualHost) *route.RouteConfiguration {
	out := proto.Clone(rc).(*route.RouteConfiguration)
	out.VirtualHosts = append(out.VirtualHosts, vhosts...)
	return out
}

// checkNoVHDS rejects, over SotW, route configurations that need VHDS.
func checkNoVHDS(items map[string]proto.Message) error {
	for _, name := range slices.Sorted(maps.Keys(items)) {
		if rc, ok := items[name].(*route.RouteConfiguration); ok && rc.Vhds != nil {
			return fmt.Errorf("route config %q: vhds needs the delta protocol", name)
		}
	}
	return nil
}

// covers reports whether the subscription asks for the resource name: a
// wildcard takes every name, VHDS names by namespace, the others by name.
func (s *deltaSub) covers(name string) bool {
	if s.wildcard {
		return true
	}
	if s.namespaced {
		name = VirtualHostConfig(name)
	}
	_, ok := s.names[name]
	return ok
}

// answeredBy is answered plus every namespace s has subscribed to: the
// VHDS view after a VirtualHost response.
func answeredBy(answered map[string]bool, s *deltaSub) map[string]bool {
	grow := false
	for n := range s.names {
		if !answered[n] {
			grow = true
			break
		}
	}
	if !grow {
		return answered
	}
	out := maps.Clone(answered)
	if out == nil {
		out = make(map[string]bool, len(s.names))
	}
	for n := range s.names {
		out[n] = true
	}
	return out
}
