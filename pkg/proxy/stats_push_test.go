package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/sluice-mesh/sluice/pkg/echo"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

// setStats gives every generated connection manager's istio.stats filter
// the config pc.
func setStats(t *testing.T, res *xdsgen.Resources, pc *stats.PluginConfig) {
	for _, l := range res.Listeners {
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				if f.Name != xdsgen.HTTPConnectionManagerFilter {
					continue
				}
				var m hcm.HttpConnectionManager
				if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
					t.Error(err)
					return
				}
				for _, hf := range m.HttpFilters {
					if hf.Name == xdsgen.StatsFilter {
						a, _ := anypb.New(pc)
						hf.ConfigType = &hcm.HttpFilter_TypedConfig{TypedConfig: a}
					}
				}
				a, _ := anypb.New(&m)
				f.GetTypedConfig().Value = a.Value
			}
		}
	}
}

// TestStatsConfigPushes: a running proxy records with the stats config
// each push brings: a header dimension, then (a push changing the label
// names) without it; a config it cannot honour (an unknown attribute) is
// NACKed naming the expression, and recording goes on with the last good
// one.
func TestStatsConfigPushes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app := echo.New(echo.Options{Address: "127.0.0.1:0", Service: "reviews", Version: "v1"})
	appAddr, err := app.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	push := proxy.ReviewsPush(t, appAddr)
	var mu sync.Mutex
	withUser := &stats.PluginConfig{Metrics: []*stats.MetricConfig{{Name: "requests_total",
		Dimensions: map[string]string{"user": "request.headers['x-user']"}}}}
	cfg := withUser
	gen := func(p *model.Proxy) (*xdsgen.Resources, error) {
		res, err := xdsgen.Generate(push, p)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		setStats(t, res, cfg)
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

	get := func(user string) error {
		req, _ := http.NewRequest("GET", "http://"+outbound+"/x", nil)
		req.Host = "reviews:9080"
		req.Header.Set("X-User", user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	scrapeRequests := func() string {
		resp, err := http.Get("http://" + admin + "/stats/prometheus")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "istio_requests_total{") {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	waitFor(t, "first config served", func() error { return get("alice") })
	if s := scrapeRequests(); !strings.Contains(s, `user="alice"`) {
		t.Fatalf("no user dimension:\n%s", s)
	}

	repush := func(pc *stats.PluginConfig) {
		mu.Lock()
		cfg = pc
		mu.Unlock()
		if err := srv.Push(srv.Proxies()[0]); err != nil {
			t.Fatal(err)
		}
	}
	repush(&stats.PluginConfig{Metrics: []*stats.MetricConfig{{TagsToRemove: []string{"response_flags"}}}})
	waitFor(t, "the new label names", func() error {
		if err := get("bob"); err != nil {
			return err
		}
		if s := scrapeRequests(); strings.Contains(s, "user=") || strings.Contains(s, "response_flags=") || s == "" {
			return fmt.Errorf("series:\n%s", s)
		}
		return nil
	})

	repush(&stats.PluginConfig{Metrics: []*stats.MetricConfig{{Dimensions: map[string]string{"x": "request.size"}}}})
	waitFor(t, "NACK naming the expression", func() error {
		for _, ps := range srv.Status() {
			for _, ts := range ps.Types {
				if strings.Contains(ts.Nack, "request.size") {
					return nil
				}
			}
		}
		return fmt.Errorf("no NACK naming request.size: %+v", srv.Status())
	})
	if err := get("carol"); err != nil {
		t.Fatal(err)
	}
	if s := scrapeRequests(); strings.Contains(s, `x="`) || strings.Contains(s, "response_flags=") {
		t.Errorf("the refused config took effect:\n%s", s)
	}
}
