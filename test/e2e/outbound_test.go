package e2e

import (
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// outsideEcho starts an echo server directly, outside the mesh: it is in no
// registry, so only passthrough can reach it.
func outsideEcho(t *testing.T) string {
	t.Helper()
	addr := testenv.FreeAddr()
	testenv.Start(t, "echo outside", "echo", "--address", addr, "--service", "outside", "--pod", "outside-0")
	testenv.WaitHTTP(t, "http://"+addr+"/", 200, testenv.StartTimeout)
	return addr
}

// ratingsOnlyVS routes only /only on ratings, so anything else has no route.
const ratingsOnlyVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts: [ratings]
  http:
  - match: [{uri: {prefix: /only}}]
    route: [{destination: {host: ratings}}]
`

// TestNoRouteAndOutboundPolicy: a request for a known host that no route
// matches gets 404 from the proxy; a request for a host outside the
// registry passes through under the default ALLOW_ANY, and gets 502 under
// REGISTRY_ONLY.
func TestNoRouteAndOutboundPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode       string
		meshConfig string
	}{
		{"ALLOW_ANY (default)", ""},
		{"REGISTRY_ONLY", "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			outside := outsideEcho(t)
			m := testenv.NewMesh(t, testenv.MeshOptions{MeshConfigYAML: tc.meshConfig})
			m.WriteConfig("vs-ratings.yaml", ratingsOnlyVS)
			service(t, m, "ratings", map[string]int{"http": 9080}, "v1")
			c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
			m.WaitReady()
			m.WaitSynced(convergeTimeout)
			m.WaitConverged(func() error {
				return allServedBy(c, 1, "ratings:9080", "/only", nil, "ratings", "v1")
			}, convergeTimeout)

			t.Run("no route is 404", func(t *testing.T) {
				r := get(t, c, "ratings:9080", "/nothing", nil)
				if r.Status != 404 || r.Served() {
					t.Errorf("want 404 from the proxy, got %s", r)
				}
			})
			t.Run("unknown host", func(t *testing.T) {
				r := get(t, c, outside, "/passthrough?x=1", nil)
				if tc.meshConfig == "" {
					if err := servedBy(r, "outside", ""); err != nil {
						t.Fatalf("Host %s under ALLOW_ANY: %v", outside, err)
					}
					if r.Echo.Request.Path != "/passthrough?x=1" {
						t.Errorf("outside server saw path %q", r.Echo.Request.Path)
					}
					return
				}
				if r.Status != 502 || r.Served() {
					t.Errorf("Host %s under REGISTRY_ONLY: want 502 from the proxy, got %s", outside, r)
				}
			})
			requireSyncedNoNACK(t, m)
		})
	}
}
