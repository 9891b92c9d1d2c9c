package httpproxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// sawDecorator is a backend handler that reports the
// x-envoy-decorator-operation it received (X-Saw: <values>, X-Saw-Present)
// and answers with one of its own, which an egress proxy must drop.
func sawDecorator(_ int64, w http.ResponseWriter, r *http.Request) {
	v, ok := r.Header["X-Envoy-Decorator-Operation"]
	w.Header().Set("X-Saw", strings.Join(v, ","))
	if ok {
		w.Header().Set("X-Saw-Present", "yes")
	}
	w.Header().Set("X-Envoy-Decorator-Operation", "from-upstream")
	io.WriteString(w, "ok\n")
}

const decoratorRoutes = `  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /split}}]
    route: [{destination: {host: web}, weight: 50}, {destination: {host: web}, weight: 50}]
  - match: [{uri: {prefix: /removed}}]
    headers: {request: {remove: [x-envoy-decorator-operation]}}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /mirrored}}]
    mirror: {host: shadow}
    route: [{destination: {host: web}}]
`

// TestDecoratorOperation: with tracing (meshConfig.enableTracing, Istio's
// default) the sidecar's outbound connection manager sends each route's
// decorator operation upstream in x-envoy-decorator-operation, replacing
// one the client sent, before the route's own header edits; mirrored copies
// carry it too; the header never comes back to the client.
func TestDecoratorOperation(t *testing.T) {
	web := newBackend(t, "web", sawDecorator)
	shadowSaw := make(chan string, 4)
	shadow := newBackend(t, "shadow", func(_ int64, w http.ResponseWriter, r *http.Request) {
		shadowSaw <- r.Header.Get("X-Envoy-Decorator-Operation")
	})
	m := newMeshConfigured(t, &meshv1alpha1.MeshConfig{EnableTracing: true},
		service("web", web)+service("shadow", shadow)+vs(decoratorRoutes), nil)
	for _, tc := range []struct {
		path, want string
	}{
		{"/api/x", "web.default.svc.cluster.local:8080/api*"},
		// A split names the VirtualService, as Istio does.
		{"/split", "web:8080/split*"},
		{"/mirrored", "web.default.svc.cluster.local:8080/mirrored*"},
	} {
		a := m.do("GET", "web", tc.path, nil, map[string]string{"X-Envoy-Decorator-Operation": "from-client"})
		if a.status != 200 || a.header.Get("X-Saw") != tc.want {
			t.Errorf("%s: status %d, backend saw %q, want %q", tc.path, a.status, a.header.Get("X-Saw"), tc.want)
		}
		if v, ok := a.header["X-Envoy-Decorator-Operation"]; ok {
			t.Errorf("%s: the answer kept x-envoy-decorator-operation %q", tc.path, v)
		}
	}
	select {
	case got := <-shadowSaw:
		if want := "web.default.svc.cluster.local:8080/mirrored*"; got != want {
			t.Errorf("mirrored copy carried %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Error("no mirrored copy")
	}
	if a := m.do("GET", "web", "/removed", nil, nil); a.header.Get("X-Saw-Present") != "" {
		t.Errorf("request_headers_to_remove did not remove the decorator: backend saw %q", a.header.Get("X-Saw"))
	}
	// A service without a VirtualService: Istio's default route.
	plain := newBackend(t, "plain", sawDecorator)
	m2 := newMeshConfigured(t, &meshv1alpha1.MeshConfig{EnableTracing: true}, service("plain", plain), nil)
	if a := m2.get("plain:8080", "/any"); a.header.Get("X-Saw") != "plain.default.svc.cluster.local:8080/*" {
		t.Errorf("default route: backend saw %q", a.header.Get("X-Saw"))
	}
}

// TestDecoratorNotPropagated: a decorator with propagate false is kept to
// the proxy, and the client's own header goes through.
func TestDecoratorNotPropagated(t *testing.T) {
	web := newBackend(t, "web", sawDecorator)
	m := newMeshConfigured(t, &meshv1alpha1.MeshConfig{EnableTracing: true}, service("web", web)+vs(decoratorRoutes),
		func(res *xdsgen.Resources) {
			for _, rc := range res.Routes {
				for _, vh := range rc.VirtualHosts {
					for _, r := range vh.Routes {
						if r.Decorator != nil {
							r.Decorator.Propagate = wrapperspb.Bool(false)
						}
					}
				}
			}
		})
	if a := m.do("GET", "web", "/api", nil, map[string]string{"X-Envoy-Decorator-Operation": "from-client"}); a.header.Get("X-Saw") != "from-client" {
		t.Errorf("backend saw %q, want the client's header alone", a.header.Get("X-Saw"))
	}
}

// TestDecoratorWithoutTracing: without a tracing block the header is an
// ordinary one both ways, as in Envoy.
func TestDecoratorWithoutTracing(t *testing.T) {
	web := newBackend(t, "web", sawDecorator)
	m := newMeshConfigured(t, meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{}), service("web", web)+vs(decoratorRoutes), nil)
	a := m.get("web", "/api")
	if a.header.Get("X-Saw-Present") != "" {
		t.Errorf("backend saw a decorator %q without tracing", a.header.Get("X-Saw"))
	}
	if got := a.header.Get("X-Envoy-Decorator-Operation"); got != "from-upstream" {
		t.Errorf("answer's x-envoy-decorator-operation = %q, want the upstream's", got)
	}
	if a := m.do("GET", "web", "/api", nil, map[string]string{"X-Envoy-Decorator-Operation": "from-client"}); a.header.Get("X-Saw") != "from-client" {
		t.Errorf("backend saw %q, want the client's header", a.header.Get("X-Saw"))
	}
}

// TestDecoratorIngress: a connection manager tracing inbound traffic
// removes the header from requests, so the service never sees it, and
// sends none of its own.
func TestDecoratorIngress(t *testing.T) {
	web := newBackend(t, "web", sawDecorator)
	m := newMeshConfigured(t, &meshv1alpha1.MeshConfig{EnableTracing: true}, service("web", web)+vs(decoratorRoutes),
		func(res *xdsgen.Resources) {
			for _, l := range res.Listeners {
				l.TrafficDirection = core.TrafficDirection_INBOUND
			}
			// The route keeps its decorator; ingress never sends it.
			if res.Routes[0].VirtualHosts[0].Routes[0].Decorator == (*route.Decorator)(nil) {
				t.Fatal("generated route has no decorator")
			}
		})
	if a := m.do("GET", "web", "/api", nil, map[string]string{"X-Envoy-Decorator-Operation": "from-client"}); a.status != 200 || a.header.Get("X-Saw-Present") != "" {
		t.Errorf("status %d; backend saw %q, want no decorator", a.status, a.header.Get("X-Saw"))
	}
}

// BenchmarkDecorator measures a request with and without egress tracing:
// the decorator costs the request path no allocation (its header value is
// made when the route is compiled). Without tracing the client sends the
// same header itself, so that the in-process upstream, whose allocations
// are counted too, parses the same request in both.
func BenchmarkDecorator(b *testing.B) {
	web := newBackend(b, "web", ok)
	for _, tracing := range []bool{false, true} {
		m := newMeshConfigured(b, &meshv1alpha1.MeshConfig{EnableTracing: tracing}, service("web", web), nil)
		name := "without-tracing"
		if tracing {
			name = "with-tracing"
		}
		b.Run(name, func(b *testing.B) {
			w := &discard{h: http.Header{}}
			req := httptest.NewRequest("GET", "http://web:8080/x", nil)
			if !tracing {
				req.Header["X-Envoy-Decorator-Operation"] = []string{"web.default.svc.cluster.local:8080/*"}
			}
			b.ReportAllocs()
			for range b.N {
				clear(w.h)
				m.handler.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}
