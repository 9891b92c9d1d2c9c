package e2e

import (
	"fmt"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestDelegate: a root VirtualService delegates /delegated to a hostless
// child VirtualService; the child's routes apply under the parent's match,
// and the root's other routes are unaffected.
func TestDelegate(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("vs-delegate.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-root
  namespace: default
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /delegated}}]
    delegate: {name: reviews-child, namespace: default}
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-child
  namespace: default
spec:
  http:
  - match: [{uri: {prefix: /delegated/v2}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v3}}]
`)
	service(t, m, "reviews", map[string]int{"http": 9080}, "v1", "v2", "v3")
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	cases := []struct{ path, version string }{
		{"/delegated/v2/x", "v2"},  // child's first route, inside the parent's prefix
		{"/delegated/other", "v3"}, // child's catch-all, still under the parent's match
		{"/delegated", "v3"},
		{"/other", "v1"}, // root's own default route
		{"/v2", "v1"},    // the child's match alone does not apply outside the parent's
	}
	m.WaitConverged(func() error {
		for _, tc := range cases {
			if err := allServedBy(c, 1, "reviews:9080", tc.path, nil, "reviews", tc.version); err != nil {
				return fmt.Errorf("%s: %w", tc.path, err)
			}
		}
		return nil
	}, convergeTimeout)
	for _, tc := range cases {
		if err := allServedBy(c, 5, "reviews:9080", tc.path, nil, "reviews", tc.version); err != nil {
			t.Errorf("%s: %v", tc.path, err)
		}
	}
	requireSyncedNoNACK(t, m)
}
