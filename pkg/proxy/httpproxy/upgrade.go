package httpproxy

import (
	"net/http"
	"strings"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
)

// HTTP/1.1 upgrades (websocket and any other type upgrade_configs allow),
// as Envoy's connection manager does them: the HCM's upgrade_configs list
// the types allowed, a route's upgrade_configs override them, and an
// upgrade allowed nowhere is answered 403 with the connection closed
// (ConnectionManagerImpl::ActiveStream::decodeHeaders, "upgrade_failed").
// An allowed upgrade goes upstream with its Upgrade and Connection
// headers; a 101 answer turns the exchange into a tunnel, any other answer
// is an ordinary response (the router filter: filters/router/tunnel.go).

// upgradeType is the protocol an HTTP/1.1 request asks to switch to
// (lower case), or "" when it asks for none: Connection lists "upgrade"
// and Upgrade is set. HTTP/2 requests carry no upgrades.
func upgradeType(r *http.Request) string {
	if r.Method == http.MethodConnect {
		// Envoy treats CONNECT as the upgrade type "CONNECT"
		// (Http::Headers::get().MethodValues.Connect in
		// createUpgradeFilterChain); see connect.go.
		return "connect"
	}
	if r.ProtoMajor != 1 {
		return ""
	}
	up := r.Header["Upgrade"]
	if len(up) == 0 || up[0] == "" {
		return ""
	}
	typ := strings.ToLower(strings.TrimSpace(up[0]))
	if typ == "h2c" {
		// Envoy's HTTP/1 codec drops an h2c upgrade (isH2UpgradeRequest)
		// and serves the request as HTTP/1.1; its headers are hop-by-hop.
		return ""
	}
	for _, v := range r.Header["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return typ
			}
		}
	}
	return ""
}

// upgradeAllowed is Envoy's createUpgradeFilterChain decision: the route's
// upgrade_configs decide when they name the type, else the HCM's.
func upgradeAllowed(chain *dataplane.FilterChain, rte *router.Route, typ string) bool {
	if on, ok := rte.Action.Upgrades[typ]; ok {
		return on
	}
	return chain.Upgrades[typ]
}

// checkUpgrade refuses an upgrade that the config does not allow and
// marks an allowed one for the router. It reports whether the request
// goes on.
func (h *Handler) checkUpgrade(w http.ResponseWriter, r *http.Request, chain *dataplane.FilterChain, rte *router.Route, info *httpfilter.RequestInfo) bool {
	typ := upgradeType(r)
	if typ == "" {
		return true
	}
	if !upgradeAllowed(chain, rte, typ) {
		// Envoy closes the connection too, so an upgrade payload is never
		// read as a smuggled request.
		w.Header().Set("Connection", "close")
		h.localReply(w, info, http.StatusForbidden, 0, "upgrade to "+typ+" is not allowed on route "+rte.Name)
		return false
	}
	info.Upgrade = typ
	return true
}
