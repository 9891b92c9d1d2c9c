package httpproxy_test

import (
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

type hcmEscaped = hcm.HttpConnectionManager_PathWithEscapedSlashesAction

const (
	escapedReject   = hcm.HttpConnectionManager_REJECT_REQUEST
	escapedRedirect = hcm.HttpConnectionManager_UNESCAPE_AND_REDIRECT
)

// editHCM sets path_with_escaped_slashes_action on every generated
// connection manager.
func editHCM(t *testing.T, act hcmEscaped) func(*xdsgen.Resources) {
	return func(res *xdsgen.Resources) {
		for _, l := range res.Listeners {
			for _, fc := range l.FilterChains {
				for _, f := range fc.Filters {
					var m hcm.HttpConnectionManager
					if f.GetTypedConfig().UnmarshalTo(&m) != nil {
						continue
					}
					m.PathWithEscapedSlashesAction = act
					a, err := anypb.New(&m)
					if err != nil {
						t.Fatal(err)
					}
					f.ConfigType = &listener.Filter_TypedConfig{TypedConfig: a}
				}
			}
		}
	}
}
