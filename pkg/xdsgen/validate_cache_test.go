package xdsgen

import (
	"testing"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Validated connection managers are remembered by content; invalid ones
// are refused every time, and a manager is refused for an invalid HTTP
// filter config even when it was seen before with a valid one.
func TestValidatedConfigsRemembered(t *testing.T) {
	mk := func(m *hcm.HttpConnectionManager) *anypb.Any {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	good := mk(&hcm.HttpConnectionManager{StatPrefix: "remembered-test",
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: "r"}}})
	if err := validateFilterConfig(good); err != nil {
		t.Fatalf("valid manager: %v", err)
	}
	if !validatedConfigs.has(good) {
		t.Fatal("a valid manager was not remembered")
	}
	bad := mk(&hcm.HttpConnectionManager{RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: "r"}}})
	for range 2 {
		if err := validateFilterConfig(bad); err == nil {
			t.Fatal("a manager without stat_prefix passed")
		}
	}
	if validatedConfigs.has(bad) {
		t.Fatal("an invalid manager was remembered")
	}
	badFilter := mk(&hcm.HttpConnectionManager{StatPrefix: "remembered-test",
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: "r"}},
		HttpFilters: []*hcm.HttpFilter{{Name: "x", ConfigType: &hcm.HttpFilter_TypedConfig{
			TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router", Value: []byte{0xff}}}}}})
	if err := validateFilterConfig(badFilter); err == nil {
		t.Fatal("a manager with an undecodable HTTP filter config passed")
	}
}
