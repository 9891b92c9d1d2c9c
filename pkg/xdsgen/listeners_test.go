package xdsgen

import (
	"testing"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// Each meshConfig.pathNormalization level gives the connection manager
// Istio's fields, and every connection manager allows websocket upgrades.
func TestHTTPFilterChainPathNormalization(t *testing.T) {
	type want struct {
		normalize, merge bool
		escaped          hcm.HttpConnectionManager_PathWithEscapedSlashesAction
	}
	keep := hcm.HttpConnectionManager_KEEP_UNCHANGED
	cases := []struct {
		mesh *meshv1alpha1.MeshConfig
		want want
	}{
		{nil, want{true, false, keep}},
		{pathNorm(meshv1alpha1.MeshConfig_ProxyPathNormalization_DEFAULT), want{true, false, keep}},
		{pathNorm(meshv1alpha1.MeshConfig_ProxyPathNormalization_BASE), want{true, false, keep}},
		{pathNorm(meshv1alpha1.MeshConfig_ProxyPathNormalization_NONE), want{false, false, keep}},
		{pathNorm(meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES), want{true, true, keep}},
		{pathNorm(meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES), want{true, true, hcm.HttpConnectionManager_UNESCAPE_AND_FORWARD}},
	}
	for _, c := range cases {
		chain, err := httpFilterChain(listenerOptions{Name: "l", StatPrefix: "s", RouteName: "r", Mesh: c.mesh})
		if err != nil {
			t.Fatal(err)
		}
		var m hcm.HttpConnectionManager
		if err := chain.Filters[0].GetTypedConfig().UnmarshalTo(&m); err != nil {
			t.Fatal(err)
		}
		got := want{m.GetNormalizePath().GetValue(), m.MergeSlashes, m.PathWithEscapedSlashesAction}
		if got != c.want {
			t.Errorf("pathNormalization %v: got %+v, want %+v", c.mesh.GetPathNormalization().GetNormalization(), got, c.want)
		}
		if len(m.UpgradeConfigs) != 1 || m.UpgradeConfigs[0].UpgradeType != "websocket" {
			t.Errorf("upgrade_configs = %v, want websocket", m.UpgradeConfigs)
		}
	}
}

func pathNorm(n meshv1alpha1.MeshConfig_ProxyPathNormalization_NormalizationType) *meshv1alpha1.MeshConfig {
	return &meshv1alpha1.MeshConfig{PathNormalization: &meshv1alpha1.MeshConfig_ProxyPathNormalization{Normalization: n}}
}
