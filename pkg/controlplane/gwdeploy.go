package controlplane

import (
	"context"
	"fmt"

	"k8s.io/client-go/kubernetes"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/sluice-mesh/sluice/pkg/kube/gwdeploy"
	"github.com/sluice-mesh/sluice/pkg/kube/inject"
)

// gatewayDeploymentLease is the per-revision Lease (with -<revision>) whose
// holder provisions Gateways: istiod's istio-gateway-deployment-<rev>
// (pilot/pkg/leaderelection GatewayDeploymentController, a per-revision
// election: each revision deploys its own Gateways).
const gatewayDeploymentLease = "sluice-gateway-deployment"

// runGatewayDeployment provisions the Deployments and Services of this
// revision's Gateways while this replica holds the revision's deployment
// Lease; nil at once without a cluster or when turned off.
func (c *Controller) runGatewayDeployment(ctx context.Context) error {
	if c.opts.Kube == nil || c.opts.DisableGatewayDeployment {
		return nil
	}
	client, err := kubernetes.NewForConfig(c.opts.Kube)
	if err != nil {
		return fmt.Errorf("control: gateway deployment: %w", err)
	}
	lead := c.leading(c.opts.Kube, gatewayDeploymentLease+"-"+orDefaultRevision(c.opts.Revision))
	lead(ctx, func(ctx context.Context) {
		if dep := c.gatewayDeployment(client, false); dep != nil {
			dep.Run(ctx)
		}
	})
	return nil
}

// gatewayDeployment is a new gateway deployment controller (one per
// leadership term: informers do not restart); statusOnly: it resolves
// Gateways' Services for status and provisions nothing. Nil when the
// cluster has no Gateway API client.
func (c *Controller) gatewayDeployment(client kubernetes.Interface, statusOnly bool) *gwdeploy.Controller {
	gwc, err := gwclient.NewForConfig(c.opts.Kube)
	if err != nil {
		c.log.Error("gateway deployment", "err", err)
		return nil
	}
	inj := c.opts.Injection
	if inj.Image == "" {
		inj.Image = inject.DefaultImage()
	}
	inj.XDSAddress = inj.xdsAddress()
	opts := gwdeploy.Options{Client: client, Gateway: gwc, Revision: c.opts.Revision, StatusOnly: statusOnly, SystemNamespace: c.opts.controlNamespace(),
		Image: inj.Image, XDSAddress: inj.XDSAddress, TrustDomain: c.mesh.Load().GetTrustDomain(), Logger: c.log}
	if statusOnly {
		opts.OnStatus = c.wakeStatus
	}
	dep, err := gwdeploy.New(opts)
	if err != nil {
		c.log.Error("gateway deployment", "err", err)
		return nil
	}
	return dep
}
