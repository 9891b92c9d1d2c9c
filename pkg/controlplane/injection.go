package controlplane

import (
	"context"
	"fmt"
	"net"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"k8s.io/client-go/rest"

	"github.com/sluice-mesh/sluice/pkg/kube/inject"
)

// InjectionOptions configure the sidecar injection webhook
// (pkg/kube/inject), served when the control plane has a Kubernetes
// client (Kube).
type InjectionOptions struct {
	// Kube is the cluster; nil: no webhook.
	Kube *rest.Config
	// Address is where the webhook listens (default :15017, istiod's).
	Address string
	// URL, when set, is how the API server reaches the webhook (a control
	// plane outside the cluster); else the Service istiod[-<rev>] in
	// Namespace.
	URL string
	// Revision is the control plane's revision (istio.io/rev; "" default).
	Revision string
	// Namespace is the control plane's (default istio-system).
	Namespace string
	// Image is the sluice image injected pods run (default this build's).
	Image string
	// XDSAddress is the xDS/CA address as pods reach it (default
	// inject.XDSAddress(Revision, Namespace):
	// istiod[-<revision>].<namespace>.svc:15012).
	XDSAddress string
}

// xdsAddress is o.XDSAddress or its default.
func (o InjectionOptions) xdsAddress() string {
	if o.XDSAddress != "" {
		return o.XDSAddress
	}
	return inject.XDSAddress(o.Revision, o.Namespace)
}

// runInjection serves the webhook until ctx ends; nil at once without a
// cluster.
func (c *Controller) runInjection(ctx context.Context) error {
	o := c.opts.Injection
	if o.Kube == nil {
		return nil
	}
	if o.Namespace == "" {
		o.Namespace = "istio-system"
	}
	if o.Image == "" {
		o.Image = inject.DefaultImage()
	}
	o.XDSAddress = o.xdsAddress()
	err := inject.Run(ctx, inject.ServerOptions{
		RESTConfig: o.Kube, CA: c.security.ca, Address: o.Address, Logger: c.log, Metrics: inject.NewMetrics(c.metrics.reg),
		Webhook:  inject.WebhookOptions{Revision: o.Revision, Namespace: o.Namespace, URL: o.URL},
		Template: inject.Config{Image: o.Image, XDSAddress: o.XDSAddress, TrustDomain: c.opts.Mesh.GetTrustDomain(), Revision: o.Revision},
		// meshConfig.defaultConfig as in force: its concurrency is the
		// injected proxies' --concurrency (pkg/kube/inject proxyConfig).
		ProxyConfig: func() *meshv1alpha1.ProxyConfig { return c.mesh.Load().GetDefaultConfig() },
		Lead:        c.leading(o.Kube, injectionLease),
	})
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	return nil
}

// injectedXDSHost is the host of the xDS address injected pods are told
// to dial (--injection-xds-address): the xDS serving certificate must
// name it, as istiod's names istiod-<rev>.<namespace>.svc.
func injectedXDSHost(o InjectionOptions) string {
	addr := o.xdsAddress()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
