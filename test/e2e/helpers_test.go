package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// convergeTimeout bounds how long a config change may take to show in
// traffic (file debounce + push debounce + xDS round trip, with headroom for
// a loaded 2-core machine).
const convergeTimeout = 20 * time.Second

// service writes a Kubernetes Service selecting app=name with the given
// ports, a DestinationRule with one subset per version, and starts one
// workload per version, each registered under every port name.
func service(t *testing.T, m *testenv.Mesh, name string, ports map[string]int, versions ...string) []*testenv.Workload {
	t.Helper()
	doc := testenv.ServiceYAML(name, "default", map[string]string{"app": name}, ports)
	if len(versions) > 0 {
		var subsets []map[string]any
		for _, v := range versions {
			subsets = append(subsets, map[string]any{"name": v, "labels": map[string]string{"version": v}})
		}
		doc += "---\n" + testenv.MustYAML(map[string]any{
			"apiVersion": "networking.istio.io/v1",
			"kind":       "DestinationRule",
			"metadata":   map[string]any{"name": name, "namespace": "default"},
			"spec":       map[string]any{"host": name, "subsets": subsets},
		})
	}
	m.WriteConfig("service-"+name+".yaml", doc)
	names := slices.Sorted(maps.Keys(ports))
	var ws []*testenv.Workload
	if len(versions) == 0 {
		versions = []string{"v1"}
	}
	for _, v := range versions {
		ws = append(ws, m.AddWorkload(testenv.WorkloadOptions{Service: name, Version: v,
			PortName: names[0], PortNames: names[1:]}))
	}
	return ws
}

// get sends GET through c and fails the test on a transport error.
func get(t *testing.T, c *testenv.Client, host, path string, headers map[string]string) *testenv.Response {
	t.Helper()
	r, err := c.Get(host, path, headers)
	if err != nil {
		t.Fatalf("GET %s%s via %s: %v", host, path, c.Name, err)
	}
	return r
}

// servedBy returns nil if r is a 200 answer from service/version.
func servedBy(r *testenv.Response, service, version string) error {
	if r.Status != 200 || r.Echo == nil {
		return fmt.Errorf("want 200 from %s %s, got %s", service, version, r)
	}
	if r.Echo.Service != service || (version != "" && r.Echo.Version != version) {
		return fmt.Errorf("want %s %s, got %s", service, version, r)
	}
	return nil
}

// allServedBy sends n requests and returns an error at the first that is not
// served by service/version.
func allServedBy(c *testenv.Client, n int, host, path string, headers map[string]string, service, version string) error {
	for i := 0; i < n; i++ {
		r, err := c.Get(host, path, headers)
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		if err := servedBy(r, service, version); err != nil {
			return fmt.Errorf("request %d of %d: %w", i+1, n, err)
		}
	}
	return nil
}

// requireSyncedNoNACK waits until every proxy has ACKed what it was sent and
// then requires that no proxy NACKed anything: every resource the control
// plane generated was accepted.
func requireSyncedNoNACK(t *testing.T, m *testenv.Mesh) {
	t.Helper()
	if err := testenv.Eventually(m.Synced, convergeTimeout); err != nil {
		t.Errorf("mesh not in sync: %v", err)
	}
	if err := m.CheckNoNACK(); err != nil {
		t.Errorf("control plane status: %v", err)
	}
}

// headerValue returns the values of a header the backend saw, joined by ",".
func headerValue(r *testenv.Response, name string) (string, bool) {
	if r.Echo == nil {
		return "", false
	}
	for k, v := range r.Echo.Request.Headers {
		if strings.EqualFold(k, name) {
			return strings.Join(v, ","), true
		}
	}
	return "", false
}
