package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// slowBackend answers "ok" to /slow once release is closed, and at once
// otherwise; started is signalled when a /slow request arrives.
type slowBackend struct {
	addr    string
	started chan struct{}
	release chan struct{}
}

func newSlowBackend(t *testing.T) *slowBackend {
	b := &slowBackend{started: make(chan struct{}, 16), release: make(chan struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			b.started <- struct{}{}
			<-b.release
		}
		io.WriteString(w, "ok")
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	b.addr = l.Addr().String()
	return b
}

// ReviewsPush is a push context with a service "reviews" (HTTP port 9080)
// whose one endpoint is backend (host:port). Exported for the external
// tests of this package (nack_test.go) too.
func ReviewsPush(t testing.TB, backend string) *model.PushContext {
	t.Helper()
	_, port, _ := net.SplitHostPort(backend)
	yaml := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1}
spec:
  address: 127.0.0.1
  labels: {app: reviews}
  ports: {http: %s}
`, port)
	dec := config.Decode([]byte(yaml), config.DecodeOptions{File: "test.yaml"})
	if len(dec.Errors) > 0 {
		t.Fatal(dec.Errors)
	}
	return model.NewPushContext(model.PushOptions{Version: "1", Mesh: meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{}), Resources: dec.Resources})
}

// sidecarResources is the xDS a sidecar with its outbound listener at
// outbound gets for a service "reviews" whose one endpoint is backend.
func sidecarResources(t *testing.T, backend, outbound string) xdsclient.Resources {
	t.Helper()
	push := ReviewsPush(t, backend)
	id := model.Proxy{Type: model.Sidecar, Name: "client", Namespace: "default", IPs: []string{"127.0.0.1"}, OutboundAddress: outbound}
	gen, err := xdsgen.Generate(push, &id)
	if err != nil {
		t.Fatal(err)
	}
	res := xdsclient.Resources{Items: map[string]map[string]proto.Message{}, Versions: map[string]string{}}
	add := func(typ, name string, m proto.Message) {
		if res.Items[typ] == nil {
			res.Items[typ] = map[string]proto.Message{}
		}
		res.Items[typ][name] = m
	}
	for _, l := range gen.Listeners {
		add(xdsclient.ListenerType, l.Name, l)
	}
	for _, r := range gen.Routes {
		add(xdsclient.RouteType, r.Name, r)
	}
	for _, c := range gen.Clusters {
		add(xdsclient.ClusterType, c.Name, c)
	}
	for _, e := range gen.Endpoints {
		add(xdsclient.EndpointType, e.ClusterName, e)
	}
	return res
}

// sidecarTo starts a backend serving h and a sidecar whose outbound
// listener sends "reviews" to it; it returns the outbound listener's
// address. Both stop when the test ends.
func sidecarTo(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := &http.Server{Handler: h}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	p := New(Options{})
	t.Cleanup(func() { p.shutdownListeners(context.Background()) })
	outbound := freeAddr(t)
	if _, err := p.apply(sidecarResources(t, l.Addr().String(), outbound)); err != nil {
		t.Fatal(err)
	}
	return outbound
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// get sends one request through the listener at addr on a new connection.
func get(addr, path string) (string, error) {
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = "reviews:9080"
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}

func asyncGet(addr, path string) chan error {
	done := make(chan error, 1)
	go func() {
		_, err := get(addr, path)
		done <- err
	}()
	return done
}

// TestListenerMoveNeverDropsTheOld: an update whose new socket cannot be
// bound is NACKed and the old listener keeps serving; once it can be, the
// listener moves and the request in flight on the old socket completes.
func TestListenerMoveNeverDropsTheOld(t *testing.T) {
	backend := newSlowBackend(t)
	p := New(Options{})
	defer p.shutdownListeners(t.Context())
	a, b := freeAddr(t), freeAddr(t)
	if _, err := p.apply(sidecarResources(t, backend.addr, a)); err != nil {
		t.Fatal(err)
	}
	if _, err := get(a, "/"); err != nil {
		t.Fatalf("first listener: %v", err)
	}

	taken, err := net.Listen("tcp", b)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.apply(sidecarResources(t, backend.addr, b))
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("update to a taken port: err %v, want a NACK naming the bind failure", err)
	}
	if _, err := get(a, "/"); err != nil {
		t.Fatalf("after the NACK the old listener must still serve: %v", err)
	}
	taken.Close()

	inflight := asyncGet(a, "/slow")
	<-backend.started
	if _, err := p.apply(sidecarResources(t, backend.addr, b)); err != nil {
		t.Fatalf("move to a free port: %v", err)
	}
	if _, err := get(b, "/"); err != nil {
		t.Fatalf("moved listener: %v", err)
	}
	close(backend.release)
	if err := <-inflight; err != nil {
		t.Fatalf("request in flight on the old socket: %v", err)
	}
	if _, err := net.DialTimeout("tcp", a, time.Second); err == nil {
		t.Errorf("old address %s still accepts connections after the move", a)
	}
}

// TestRemovedListenerDrains: a request in flight on a listener that an
// update removes completes; new connections are refused.
func TestRemovedListenerDrains(t *testing.T) {
	backend := newSlowBackend(t)
	p := New(Options{})
	defer p.shutdownListeners(t.Context())
	a := freeAddr(t)
	res := sidecarResources(t, backend.addr, a)
	if _, err := p.apply(res); err != nil {
		t.Fatal(err)
	}
	inflight := asyncGet(a, "/slow")
	<-backend.started
	without := res
	without.Items = map[string]map[string]proto.Message{}
	for typ, m := range res.Items {
		if typ != xdsclient.ListenerType {
			without.Items[typ] = m
		}
	}
	if _, err := p.apply(without); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", a, time.Second); err == nil {
		t.Errorf("removed listener %s still accepts connections", a)
	}
	close(backend.release)
	if err := <-inflight; err != nil {
		t.Fatalf("request in flight on the removed listener: %v", err)
	}
}

// TestKindChangeKeepsTheSocket: a listener that changes from HTTP to TCP
// proxying on the same address keeps its socket and server (no moment
// without it), its in-flight HTTP request completes, and new connections
// are served by the new (TCP) chain.
func TestKindChangeKeepsTheSocket(t *testing.T) {
	backend := newSlowBackend(t)
	p := New(Options{})
	defer p.shutdownListeners(t.Context())
	a := freeAddr(t)
	if _, err := p.apply(sidecarResources(t, backend.addr, a)); err != nil {
		t.Fatal(err)
	}
	rt := p.Runtime()
	var clusterName string
	for n, c := range rt.Clusters {
		if strings.Contains(n, "reviews") && len(c.Hosts) > 0 {
			clusterName = n
		}
	}
	name := rt.ListenerNames()[0]
	sockBefore, srvBefore := p.listeners[name].sock, p.listeners[name].srv
	inflight := asyncGet(a, "/slow")
	<-backend.started

	next := *rt
	next.Listeners = map[string]*dataplane.Listener{name: {Name: name, Address: a, TCP: true,
		Chains: []*dataplane.FilterChain{{TCP: &dataplane.TCPRoute{Cluster: clusterName}}}}}
	up, err := p.prepareListeners(&next)
	if err != nil {
		t.Fatal(err)
	}
	p.rt.Store(&next)
	p.commitListeners(up)
	if al := p.listeners[name]; al.sock != sockBefore || al.srv != srvBefore {
		t.Fatalf("same socket %v, same server %v; want both kept", al.sock == sockBefore, al.srv == srvBefore)
	}
	if body, err := get(a, "/"); err != nil || body != "ok" {
		t.Fatalf("through the TCP proxy: %q %v", body, err)
	}
	close(backend.release)
	if err := <-inflight; err != nil {
		t.Fatalf("HTTP request in flight across the kind change: %v", err)
	}
}

// TestAdminShowsCompileCounts: after an EDS-only update /stats shows the
// listeners and routes reused and one more cluster compiled, and the
// listener keeps its socket.
func TestAdminShowsCompileCounts(t *testing.T) {
	backend := newSlowBackend(t)
	p := New(Options{})
	defer p.shutdownListeners(t.Context())
	admin := httptest.NewServer(p.adminHandler())
	defer admin.Close()
	a := freeAddr(t)
	res := sidecarResources(t, backend.addr, a)
	if _, err := p.apply(res); err != nil {
		t.Fatal(err)
	}
	rt1 := p.Runtime()
	eds := map[string]proto.Message{}
	for name, m := range res.Items[xdsclient.EndpointType] {
		cla := proto.Clone(m).(*endpoint.ClusterLoadAssignment)
		cla.Endpoints = append(cla.Endpoints, proto.Clone(cla.Endpoints[0]).(*endpoint.LocalityLbEndpoints))
		cla.Endpoints[1].Priority = 1
		eds[name] = cla
	}
	next := xdsclient.Resources{Items: map[string]map[string]proto.Message{}, Versions: res.Versions}
	for typ, m := range res.Items {
		next.Items[typ] = m
	}
	next.Items[xdsclient.EndpointType] = eds
	if _, err := p.apply(next); err != nil {
		t.Fatal(err)
	}
	rt2 := p.Runtime()
	for n, l := range rt1.Listeners {
		if rt2.Listeners[n] != l {
			t.Errorf("listener %s rebuilt by an EDS-only update", n)
		}
	}
	resp, err := http.Get(admin.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf("sluice.config.listeners_compiled: %d\n", len(rt1.Listeners)),
		fmt.Sprintf("sluice.config.listeners_reused: %d\n", len(rt1.Listeners)),
		fmt.Sprintf("sluice.config.routes_reused: %d\n", len(rt1.Routes)),
		fmt.Sprintf("sluice.config.clusters_compiled: %d\n", len(rt1.Clusters)+len(eds)),
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/stats lacks %q", want)
		}
	}
	if _, err := get(a, "/"); err != nil {
		t.Fatalf("after the EDS update: %v", err)
	}
}
