package model

import (
	"fmt"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// pa writes one PeerAuthentication document.
func pa(ns, name, created, spec string) string {
	ts := ""
	if created != "" {
		ts = ", creationTimestamp: " + created
	}
	return fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: %s, namespace: %s%s}\nspec: %s\n---\n", name, ns, ts, spec)
}

func peerPush(t *testing.T, root string, docs ...string) *PushContext {
	t.Helper()
	return NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{RootNamespace: root}, Resources: decode(t, strings.Join(docs, ""))})
}

func TestPeerAuthenticationPrecedence(t *testing.T) {
	app := map[string]string{"app": "reviews", "version": "v1"}
	const t1, t2 = "2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z"
	cases := []struct {
		name   string
		root   string
		docs   []string
		ns     string
		labels map[string]string
		mode   MTLSMode
		ports  map[uint32]MTLSMode
	}{
		{name: "no policy is PERMISSIVE", ns: "prod", labels: app, mode: MTLSPermissive},
		{name: "mesh STRICT", docs: []string{pa("istio-system", "default", "", "{mtls: {mode: STRICT}}")}, ns: "prod", labels: app, mode: MTLSStrict},
		{name: "mesh in a configured root namespace", root: "mesh-root",
			docs: []string{pa("istio-system", "default", "", "{mtls: {mode: STRICT}}"), pa("mesh-root", "default", "", "{mtls: {mode: DISABLE}}")},
			ns:   "prod", labels: app, mode: MTLSDisable},
		{name: "namespace beats mesh",
			docs: []string{pa("istio-system", "default", "", "{mtls: {mode: STRICT}}"), pa("prod", "default", "", "{mtls: {mode: DISABLE}}")},
			ns:   "prod", labels: app, mode: MTLSDisable},
		{name: "another namespace's policy does not apply",
			docs: []string{pa("istio-system", "default", "", "{mtls: {mode: STRICT}}"), pa("dev", "default", "", "{mtls: {mode: DISABLE}}")},
			ns:   "prod", labels: app, mode: MTLSStrict},
		{name: "namespace UNSET inherits mesh",
			docs: []string{pa("istio-system", "default", "", "{mtls: {mode: STRICT}}"), pa("prod", "default", "", "{mtls: {mode: UNSET}}")},
			ns:   "prod", labels: app, mode: MTLSStrict},
		{name: "workload beats namespace",
			docs: []string{pa("prod", "default", "", "{mtls: {mode: STRICT}}"), pa("prod", "reviews", "", "{selector: {matchLabels: {app: reviews}}, mtls: {mode: PERMISSIVE}}")},
			ns:   "prod", labels: app, mode: MTLSPermissive},
		{name: "workload selector not matching",
			docs: []string{pa("prod", "default", "", "{mtls: {mode: STRICT}}"), pa("prod", "ratings", "", "{selector: {matchLabels: {app: ratings}}, mtls: {mode: DISABLE}}")},
			ns:   "prod", labels: app, mode: MTLSStrict},
		{name: "workload UNSET inherits namespace, then mesh",
			docs: []string{pa("istio-system", "default", "", "{mtls: {mode: DISABLE}}"), pa("prod", "reviews", "", "{selector: {matchLabels: {app: reviews}}}")},
			ns:   "prod", labels: app, mode: MTLSDisable},
		{name: "selector in the root namespace is ignored",
			docs: []string{pa("istio-system", "reviews", "", "{selector: {matchLabels: {app: reviews}}, mtls: {mode: STRICT}}")},
			ns:   "prod", labels: app, mode: MTLSPermissive},
		{name: "empty selector is namespace level",
			docs: []string{pa("prod", "x", "", "{selector: {}, mtls: {mode: STRICT}}")},
			ns:   "prod", labels: app, mode: MTLSStrict},
		{name: "port level overrides, UNSET port inherits the workload",
			docs: []string{pa("prod", "default", "", "{mtls: {mode: STRICT}}"),
				pa("prod", "reviews", "", `{selector: {matchLabels: {app: reviews}}, mtls: {mode: PERMISSIVE}, portLevelMtls: {"8080": {mode: DISABLE}, "9090": {mode: UNSET}}}`)},
			ns: "prod", labels: app, mode: MTLSPermissive, ports: map[uint32]MTLSMode{8080: MTLSDisable, 9090: MTLSPermissive, 7070: MTLSPermissive}},
		{name: "port level UNSET with workload UNSET takes the namespace mode",
			docs: []string{pa("prod", "default", "", "{mtls: {mode: STRICT}}"),
				pa("prod", "reviews", "", `{selector: {matchLabels: {app: reviews}}, portLevelMtls: {"8080": {mode: UNSET}, "8081": {mode: PERMISSIVE}}}`)},
			ns: "prod", labels: app, mode: MTLSStrict, ports: map[uint32]MTLSMode{8080: MTLSStrict, 8081: MTLSPermissive, 1: MTLSStrict}},
		{name: "two namespace policies: the oldest wins",
			docs: []string{pa("prod", "b-new", t2, "{mtls: {mode: DISABLE}}"), pa("prod", "z-old", t1, "{mtls: {mode: STRICT}}")},
			ns:   "prod", labels: app, mode: MTLSStrict},
		{name: "two workload policies: the oldest wins",
			docs: []string{pa("prod", "a-new", t2, "{selector: {matchLabels: {app: reviews}}, mtls: {mode: DISABLE}}"),
				pa("prod", "z-old", t1, "{selector: {matchLabels: {version: v1}}, mtls: {mode: STRICT}}")},
			ns: "prod", labels: app, mode: MTLSStrict},
		{name: "equal times: the first name wins",
			docs: []string{pa("prod", "b", t1, "{selector: {matchLabels: {app: reviews}}, mtls: {mode: DISABLE}}"),
				pa("prod", "a", t1, "{selector: {matchLabels: {app: reviews}}, mtls: {mode: STRICT}}")},
			ns: "prod", labels: app, mode: MTLSStrict},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pc := peerPush(t, c.root, c.docs...)
			got := pc.PeerAuthenticationFor(c.ns, c.labels)
			if got.Mode != c.mode {
				t.Fatalf("mode %s, want %s (from %v)", got.Mode, c.mode, got.From)
			}
			for port, want := range c.ports {
				if m := got.ModeForPort(port); m != want {
					t.Errorf("port %d: mode %s, want %s", port, m, want)
				}
			}
		})
	}
}

func TestNamespaceMTLSMode(t *testing.T) {
	pc := peerPush(t, "",
		pa("istio-system", "default", "", "{mtls: {mode: STRICT}}"),
		pa("legacy", "default", "", "{mtls: {mode: DISABLE}}"),
		pa("inherit", "default", "", "{}"),
		pa("prod", "reviews", "", "{selector: {matchLabels: {app: reviews}}, mtls: {mode: DISABLE}}"))
	for ns, want := range map[string]MTLSMode{"legacy": MTLSDisable, "inherit": MTLSStrict, "prod": MTLSStrict, "other": MTLSStrict} {
		if got := pc.NamespaceMTLSMode(ns); got != want {
			t.Errorf("%s: %s, want %s", ns, got, want)
		}
	}
	if got := peerPush(t, "").NamespaceMTLSMode("prod"); got != MTLSUnknown {
		t.Errorf("no policy: %s, want UNKNOWN (Istio then infers PERMISSIVE)", got)
	}
	if got := peerPush(t, "", pa("istio-system", "default", "", "{}")).NamespaceMTLSMode("prod"); got != MTLSPermissive {
		t.Errorf("mesh policy UNSET: %s, want PERMISSIVE", got)
	}
}

func TestWorkloadPorts(t *testing.T) {
	pc := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: decode(t, `apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: bar}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 80}, {name: admin, port: 9000, targetPort: 9090}, {name: plain, port: 7000}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin, namespace: bar}
spec: {address: 127.0.0.1, labels: {app: httpbin}, ports: {http: 20001, admin: 20002, plain: 20001}}
`)})
	for _, c := range []struct {
		host string
		port uint32
		want string
	}{
		{"127.0.0.1", 20001, "[20001 80]"},
		{"0.0.0.0", 20002, "[20002 9090]"},
		{"127.0.0.2", 20001, "[20001]"},
		{"127.0.0.1", 20003, "[20003]"},
	} {
		if got := fmt.Sprint(pc.WorkloadPorts(c.host, c.port)); got != c.want {
			t.Errorf("%s:%d: %s, want %s", c.host, c.port, got, c.want)
		}
	}
}
