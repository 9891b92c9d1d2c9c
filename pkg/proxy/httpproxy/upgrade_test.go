package httpproxy_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

func websocketBackend(t *testing.T, name string) *backend {
	ws := testenv.WebsocketEcho(name + " ")
	return newBackend(t, name, func(_ int64, w http.ResponseWriter, r *http.Request) { ws.ServeHTTP(w, r) })
}

// TestWebsocketTunnel: a websocket handshake goes upstream with its
// Upgrade headers (Istio's upgrade_configs allow websocket on every
// connection manager), the 101 comes back and frames flow both ways.
func TestWebsocketTunnel(t *testing.T) {
	t.Parallel()
	web := websocketBackend(t, "web")
	m := newMesh(t, service("web", web))
	addr := strings.TrimPrefix(m.url, "http://")
	c, resp, err := testenv.DialWebsocket(addr, "web:8080", "/chat?room=1")
	if err != nil || c == nil {
		t.Fatalf("handshake: %v %+v", err, resp)
	}
	defer c.Close()
	for _, msg := range []string{"hello", strings.Repeat("x", 70_000)} {
		got, err := c.Send(msg)
		if err != nil || got != "web /chat?room=1: "+msg {
			t.Fatalf("echo of %d bytes: %.60q, %v", len(msg), got, err)
		}
	}
}

// TestUpgradeNotAllowed: an upgrade type upgrade_configs do not list, or
// one a route disables, is refused 403 with the connection closed, as
// Envoy does (upgrade_failed); the app never sees it.
func TestUpgradeNotAllowed(t *testing.T) {
	t.Parallel()
	web := websocketBackend(t, "web")
	disableOnRoute := func(res *xdsgen.Resources) {
		for _, rc := range res.Routes {
			for _, vh := range rc.VirtualHosts {
				for _, r := range vh.Routes {
					if ra, ok := r.Action.(*route.Route_Route); ok && r.Match.GetConnectMatcher() == nil {
						ra.Route.UpgradeConfigs = []*route.RouteAction_UpgradeConfig{{UpgradeType: "WebSocket", Enabled: wrapperspb.Bool(false)}}
					}
				}
			}
		}
	}
	m := newMeshEdited(t, service("web", web), disableOnRoute)
	addr := strings.TrimPrefix(m.url, "http://")
	c, resp, err := testenv.DialWebsocket(addr, "web:8080", "/chat")
	if err != nil || c != nil || resp.StatusCode != http.StatusForbidden || !resp.Close {
		t.Fatalf("websocket on a route that disables it: %v %+v", err, resp)
	}
	plain := newMesh(t, service("web", web))
	a := plain.do("GET", "web:8080", "/", nil, map[string]string{"Connection": "Upgrade", "Upgrade": "spdy/3"})
	if a.status != http.StatusForbidden || !strings.Contains(a.body, "upgrade to spdy/3 is not allowed") {
		t.Fatalf("upgrade type not in upgrade_configs: %d %q", a.status, a.body)
	}
	if web.count.Load() != 0 {
		t.Errorf("the app saw %d refused upgrades", web.count.Load())
	}
	// An h2c upgrade is served as plain HTTP/1.1, as Envoy's codec does.
	a = plain.do("GET", "web:8080", "/", nil, map[string]string{"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAAQAAP__"})
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, "not a websocket handshake") {
		t.Errorf("h2c upgrade: %d %q, want the app's own answer to a plain request", a.status, a.body)
	}
}

const publicAdminVS = `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /public}}]
    route: [{destination: {host: public}}]
  - route: [{destination: {host: web}}]
`

// TestPathNormalizationBeforeRouting: with Istio's default (BASE),
// "/public/../admin" is routed as "/admin" and the app receives "/admin";
// with NONE it is routed and sent as written.
func TestPathNormalizationBeforeRouting(t *testing.T) {
	t.Parallel()
	web, public := newBackend(t, "web", ok), newBackend(t, "public", ok)
	yaml := service("web", web) + service("public", public) + publicAdminVS
	m := newMesh(t, yaml)
	for _, p := range []string{"/public/../admin", "/public/%2e%2e/admin", "/public/./../admin?q=1"} {
		a := m.do("GET", "web:8080", p, nil, nil)
		if a.status != 200 || a.header.Get("X-Backend") != "web" {
			t.Errorf("%s: routed to %q (%d), want web", p, a.header.Get("X-Backend"), a.status)
		}
	}
	for _, s := range web.seen() {
		if s.path != "/admin" {
			t.Errorf("the app received %q, want /admin", s.path)
		}
	}
	none := newMeshConfigured(t, &meshv1alpha1.MeshConfig{PathNormalization: &meshv1alpha1.MeshConfig_ProxyPathNormalization{
		Normalization: meshv1alpha1.MeshConfig_ProxyPathNormalization_NONE}}, yaml, nil)
	if a := none.do("GET", "web:8080", "/public/../admin", nil, nil); a.header.Get("X-Backend") != "public" {
		t.Errorf("pathNormalization NONE: routed to %q, want public (as written)", a.header.Get("X-Backend"))
	}
}

// TestEscapedSlashes: DECODE_AND_MERGE_SLASHES unescapes %2F before
// routing; REJECT_REQUEST answers 400 and UNESCAPE_AND_REDIRECT 307 to the
// unescaped path, as Envoy's path_with_escaped_slashes_action.
func TestEscapedSlashes(t *testing.T) {
	t.Parallel()
	web, public := newBackend(t, "web", ok), newBackend(t, "public", ok)
	yaml := service("web", web) + service("public", public) + publicAdminVS
	decode := newMeshConfigured(t, &meshv1alpha1.MeshConfig{PathNormalization: &meshv1alpha1.MeshConfig_ProxyPathNormalization{
		Normalization: meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES}}, yaml, nil)
	if a := decode.do("GET", "web:8080", "/public%2F..%2F%2Fadmin", nil, nil); a.status != 200 || a.header.Get("X-Backend") != "web" {
		t.Errorf("DECODE_AND_MERGE_SLASHES: %d routed to %q, want web", a.status, a.header.Get("X-Backend"))
	}
	action := func(act hcmEscaped) func(*xdsgen.Resources) { return editHCM(t, act) }
	reject := newMeshEdited(t, yaml, action(escapedReject))
	if a := reject.do("GET", "web:8080", "/public%2fx", nil, nil); a.status != 400 {
		t.Errorf("REJECT_REQUEST: %d, want 400", a.status)
	}
	redirect := newMeshEdited(t, yaml, action(escapedRedirect))
	redirect.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	a := redirect.do("GET", "web:8080", "/a%2Fb?x=1", nil, nil)
	if loc, _ := url.Parse(a.header.Get("Location")); a.status != 307 || loc == nil || loc.RequestURI() != "/a/b?x=1" {
		t.Errorf("UNESCAPE_AND_REDIRECT: %d Location %q, want 307 /a/b?x=1", a.status, a.header.Get("Location"))
	}
	if n := web.count.Load() + public.count.Load(); n != 1 {
		t.Errorf("the apps saw %d requests, want only the decoded one", n)
	}
}
