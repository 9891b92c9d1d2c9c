package controlplane

import (
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// A node proxy's xDS stream on Kubernetes: its token is its own service
// account's (istio-system/ztunnel), so it must announce that service
// account (Istio's ztunnel sends SERVICE_ACCOUNT; sluice's reads the same
// env), or the stream is refused as istiod's checkConnectionIdentity
// refuses a mismatch.
func TestNodeProxyAnnouncesItsServiceAccount(t *testing.T) {
	caller := ca.Caller{Namespace: "istio-system", ServiceAccount: "ztunnel", PodName: "ztunnel-a"}
	node := func(sa string) *discovery.DeltaDiscoveryRequest {
		p := &model.Proxy{Type: model.Ztunnel, Name: "ztunnel-a", Namespace: "istio-system", IPs: []string{"10.0.0.2"}, ServiceAccount: sa}
		return &discovery.DeltaDiscoveryRequest{Node: p.Node()}
	}
	if err := checkNode(caller, node("ztunnel")); err != nil {
		t.Fatalf("ztunnel announcing istio-system/ztunnel: %v", err)
	}
	if err := checkNode(caller, node("")); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ztunnel announcing no service account (\"default\"): %v, want PermissionDenied", err)
	}
}
