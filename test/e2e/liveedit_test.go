package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// reviewsVS renders a VirtualService for reviews from its http routes.
func reviewsVS(http string) string {
	return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
` + http
}

// TestLiveEdit: edits to a config file take effect without restarting
// anything; an invalid edit is rejected, reported in /debug/status naming
// the file and the field, and the last good config stays in force until the
// file is fixed.
func TestLiveEdit(t *testing.T) {
	t.Parallel()
	const file = "vs-reviews.yaml"
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig(file, reviewsVS(`  - route:
    - destination: {host: reviews, subset: v1}
`))
	service(t, m, "reviews", map[string]int{"http": 9080}, "v1", "v2")
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	jason := map[string]string{"end-user": "jason"}
	m.WaitConverged(func() error { return allServedBy(c, 20, "reviews:9080", "/", nil, "reviews", "v1") }, convergeTimeout)

	// Every process started above must still be the same one at the end.
	procs := []*testenv.Process{m.Control, c.Sidecar}
	defer func() {
		for _, p := range procs {
			if exited, err := p.Exited(); exited {
				t.Errorf("%s exited during live edits (%v): edits must apply without restart", p.Name, err)
			}
		}
	}()

	t.Run("weights", func(t *testing.T) {
		m.WriteConfig(file, reviewsVS(`  - route:
    - destination: {host: reviews, subset: v1}
      weight: 0
    - destination: {host: reviews, subset: v2}
      weight: 100
`))
		m.WaitConverged(func() error { return allServedBy(c, 20, "reviews:9080", "/", nil, "reviews", "v2") }, convergeTimeout)
	})

	// goodRoutes: jason goes to v1, everyone else to v2.
	goodRoutes := `  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v1}
  - route:
    - destination: {host: reviews, subset: v2}
`
	followsGood := func() error {
		if err := allServedBy(c, 10, "reviews:9080", "/", jason, "reviews", "v1"); err != nil {
			return fmt.Errorf("end-user jason: %w", err)
		}
		if err := allServedBy(c, 10, "reviews:9080", "/", nil, "reviews", "v2"); err != nil {
			return fmt.Errorf("no end-user: %w", err)
		}
		return nil
	}
	t.Run("routes", func(t *testing.T) {
		m.WriteConfig(file, reviewsVS(goodRoutes))
		m.WaitConverged(followsGood, convergeTimeout)
		if st := m.Status(); len(st.ConfigErrors) > 0 {
			t.Errorf("config errors after a good edit: %v", st.ConfigErrors)
		}
	})

	// Each bad edit would send everything to v1 if it were (even partly)
	// applied, so the traffic check can tell.
	bad := []struct {
		name, http, field string
	}{
		{"invalid regex", `  - match:
    - uri: {regex: "(unclosed"}
    route:
    - destination: {host: reviews, subset: v1}
  - route:
    - destination: {host: reviews, subset: v1}
`, "spec.http[0].match[0].uri.regex"},
		{"destination without host", `  - route:
    - destination: {subset: v1}
`, "spec.http[0].route[0].destination.host"},
	}
	for _, b := range bad {
		t.Run("rejected "+b.name, func(t *testing.T) {
			m.WriteConfig(file, reviewsVS(b.http))
			var errs []string
			m.WaitConverged(func() error {
				st, err := m.TryStatus()
				if err != nil {
					return err
				}
				if errs = st.ErrorsMentioning(file, b.field); len(errs) == 0 {
					return fmt.Errorf("no config error naming %s and %q; config_errors: %v", file, b.field, st.ConfigErrors)
				}
				return nil
			}, convergeTimeout)
			t.Logf("reported: %s", strings.Join(errs, "; "))
			// Give a wrongly applied edit the time it would take to show.
			m.WaitSynced(convergeTimeout)
			if err := followsGood(); err != nil {
				t.Errorf("traffic no longer follows the last good config after a rejected edit: %v", err)
			}
		})
	}

	t.Run("fixed", func(t *testing.T) {
		// Everything to v1: differs from the last good config, where only
		// jason went to v1.
		m.WriteConfig(file, reviewsVS(`  - route:
    - destination: {host: reviews, subset: v1}
`))
		m.WaitConverged(func() error {
			st, err := m.TryStatus()
			if err != nil {
				return err
			}
			if len(st.ConfigErrors) > 0 {
				return fmt.Errorf("config errors remain after the fix: %v", st.ConfigErrors)
			}
			return allServedBy(c, 20, "reviews:9080", "/", nil, "reviews", "v1")
		}, convergeTimeout)
	})

	t.Run("removed", func(t *testing.T) {
		// Without a VirtualService, reviews balances over all its
		// endpoints: both versions show up.
		m.RemoveConfig(file)
		m.WaitConverged(func() error {
			seen := map[string]int{}
			for i := 0; i < 40; i++ {
				r, err := c.Get("reviews:9080", "/", nil)
				if err != nil {
					return err
				}
				if r.Echo == nil {
					return fmt.Errorf("request %d: %s", i, r)
				}
				seen[r.Echo.Version]++
			}
			if seen["v1"] == 0 || seen["v2"] == 0 {
				return fmt.Errorf("versions seen in 40 requests without the VirtualService: %v", seen)
			}
			return nil
		}, convergeTimeout)
	})
	requireSyncedNoNACK(t, m)
}
