package proxy

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

// /config_dump shows a route configuration with vhds as the proxy uses
// it: its own virtual hosts followed by its VHDS ones by name.
func TestConfigDumpMergesVHDS(t *testing.T) {
	rc := &route.RouteConfiguration{Name: "rc", VirtualHosts: []*route.VirtualHost{{Name: "local", Domains: []string{"*"}}},
		Vhds: &route.Vhds{ConfigSource: &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}}}
	res := xdsclient.Resources{Items: map[string]map[string]proto.Message{
		xdsclient.RouteType: {"rc": rc},
		xdsclient.VirtualHostType: {"rc/b": &route.VirtualHost{Name: "rc/b", Domains: []string{"b"}},
			"rc/a": &route.VirtualHost{Name: "rc/a", Domains: []string{"a"}}, "other/x": &route.VirtualHost{Name: "other/x", Domains: []string{"x"}}},
	}}
	p := &Proxy{}
	p.rt.Store(&dataplane.Runtime{Source: res})
	rec := httptest.NewRecorder()
	p.configDump(rec, httptest.NewRequest("GET", "/config_dump", nil))
	var out struct {
		XDS map[string][]struct {
			Name         string `json:"name"`
			VirtualHosts []struct {
				Name string `json:"name"`
			} `json:"virtualHosts"`
		} `json:"xds"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	rcs := out.XDS["RouteConfiguration"]
	if len(rcs) != 1 {
		t.Fatalf("route configurations %+v", rcs)
	}
	var names []string
	for _, vh := range rcs[0].VirtualHosts {
		names = append(names, vh.Name)
	}
	if !slices.Equal(names, []string{"local", "rc/a", "rc/b"}) {
		t.Errorf("dumped virtual hosts %v, want local rc/a rc/b", names)
	}
	if len(rc.VirtualHosts) != 1 {
		t.Error("the dump changed the view's route configuration")
	}
}
