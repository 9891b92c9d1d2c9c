package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/echo"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestNackKeepsLastGoodRuntime pushes a valid config, then one the proxy
// cannot honour. The proxy must NACK with its reason, the server must
// record the NACK, and traffic must keep flowing on the last good runtime.
func TestNackKeepsLastGoodRuntime(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	app := echo.New(echo.Options{Address: "127.0.0.1:0", Service: "reviews", Version: "v1"})
	appAddr, err := app.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	push := proxy.ReviewsPush(t, appAddr)

	var mu sync.Mutex
	breakIt := false
	gen := func(p *model.Proxy) (*xdsgen.Resources, error) {
		res, err := xdsgen.Generate(push, p)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if breakIt {
			// A network filter sluice does not implement: a proxy that
			// accepted it would silently drop what it asks for.
			cfg, _ := anypb.New(&structpb.Struct{})
			res.Listeners[0].FilterChains[0].Filters = append(res.Listeners[0].FilterChains[0].Filters,
				&listener.Filter{Name: "envoy.filters.network.redis_proxy", ConfigType: &listener.Filter_TypedConfig{TypedConfig: cfg}})
		}
		return res, nil
	}
	srv := xdsserver.New(xdsserver.Options{Generate: gen})
	xdsLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx, xdsLis)

	outbound, admin := freeAddr(t), freeAddr(t)
	id := model.Proxy{Type: model.Sidecar, Name: "client", Namespace: "default", IPs: []string{"127.0.0.1"}, OutboundAddress: outbound}
	px := proxy.New(proxy.Options{Identity: id, XDSAddress: xdsLis.Addr().String(), AdminAddress: admin})
	go px.Run(ctx)

	get := func() (int, string, error) {
		req, _ := http.NewRequest("GET", "http://"+outbound+"/x", nil)
		req.Host = "reviews:9080"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	waitFor(t, "first config served", func() error {
		code, body, err := get()
		if err != nil || code != 200 {
			return fmt.Errorf("code %d err %v body %q", code, err, body)
		}
		return nil
	})

	mu.Lock()
	breakIt = true
	mu.Unlock()
	p := srv.Proxies()[0]
	if err := srv.Push(p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "NACK recorded by the server", func() error {
		for _, ps := range srv.Status() {
			for _, ts := range ps.Types {
				if ts.Nack != "" {
					if !strings.Contains(ts.Nack, "redis_proxy") {
						return fmt.Errorf("NACK does not say why: %q", ts.Nack)
					}
					return nil
				}
			}
		}
		return fmt.Errorf("no NACK yet: %+v", srv.Status())
	})
	if code, body, err := get(); err != nil || code != 200 || !strings.Contains(body, `"service":"reviews"`) {
		t.Fatalf("after the NACK the last good config must still route: code %d err %v body %q", code, err, body)
	}
	resp, err := http.Get("http://" + admin + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	dump, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(dump), "last_rejection") || !strings.Contains(string(dump), "redis_proxy") {
		t.Errorf("/config_dump does not show the rejection:\n%s", dump)
	}
}

func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func timeSleep() { time.Sleep(10 * time.Millisecond) }

// TestBindFailureIsNacked: a pushed listener address the proxy cannot bind
// (taken by another process) is NACKed with the reason, and the listener
// in force keeps serving; once the address is free the next push moves it.
func TestBindFailureIsNacked(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app := echo.New(echo.Options{Address: "127.0.0.1:0", Service: "reviews", Version: "v1"})
	appAddr, err := app.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, appPort, _ := net.SplitHostPort(appAddr)
	dec := config.Decode([]byte(fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1}
spec: {address: 127.0.0.1, labels: {app: reviews}, ports: {http: %s}}
`, appPort)), config.DecodeOptions{File: "test.yaml"})
	push := model.NewPushContext(model.PushOptions{Version: "1", Mesh: meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{}), Resources: dec.Resources})
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var mu sync.Mutex
	moveTo := ""
	gen := func(p *model.Proxy) (*xdsgen.Resources, error) {
		res, err := xdsgen.Generate(push, p)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if moveTo != "" {
			host, port, _ := net.SplitHostPort(moveTo)
			sa := res.Listeners[0].GetAddress().GetSocketAddress()
			p, _ := strconv.Atoi(port)
			sa.Address, sa.PortSpecifier = host, &core.SocketAddress_PortValue{PortValue: uint32(p)}
		}
		return res, nil
	}
	srv := xdsserver.New(xdsserver.Options{Generate: gen})
	xdsLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx, xdsLis)
	outbound, admin := freeAddr(t), freeAddr(t)
	id := model.Proxy{Type: model.Sidecar, Name: "client", Namespace: "default", IPs: []string{"127.0.0.1"}, OutboundAddress: outbound}
	go proxy.New(proxy.Options{Identity: id, XDSAddress: xdsLis.Addr().String(), AdminAddress: admin}).Run(ctx)
	get := func(addr string) error {
		req, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
		req.Host = "reviews:9080"
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	waitFor(t, "first config served", func() error { return get(outbound) })

	mu.Lock()
	moveTo = taken.Addr().String()
	mu.Unlock()
	if err := srv.Push(srv.Proxies()[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "NACK of the unbindable listener", func() error {
		for _, ps := range srv.Status() {
			for _, ts := range ps.Types {
				if strings.Contains(ts.Nack, "address already in use") {
					return nil
				}
			}
		}
		return fmt.Errorf("no NACK naming the bind failure yet: %+v", srv.Status())
	})
	if err := get(outbound); err != nil {
		t.Fatalf("the listener in force must keep serving after the NACK: %v", err)
	}

	free := freeAddr(t)
	mu.Lock()
	moveTo = free
	mu.Unlock()
	if err := srv.Push(srv.Proxies()[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "listener moved to the free address", func() error { return get(free) })
}
