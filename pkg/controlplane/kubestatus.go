package controlplane

import (
	"context"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
	"github.com/sluice-mesh/sluice/pkg/kube/gwstatus"
	"github.com/sluice-mesh/sluice/pkg/kube/leader"
)

// The Leases whose holders do the work one replica does (istiod's:
// istio-gateway-status-leader and istio-leader, pilot/pkg/leaderelection):
// write Gateway API status, and keep the injection webhook's caBundle and
// the root certificate ConfigMaps.
const (
	gatewayStatusLease = "sluice-gateway-status-leader"
	injectionLease     = "sluice-injection-leader"
)

// statusRetry is how soon a failed status write is tried again.
const statusRetry = 5 * time.Second

// controlNamespace is the control plane's namespace on Kubernetes
// (istiod's POD_NAMESPACE): the injection webhook's, the CA Secrets', the
// leader Leases'.
func (o Options) controlNamespace() string {
	if o.Injection.Namespace != "" {
		return o.Injection.Namespace
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "istio-system"
}

// wakeStatus tells the status writer a new push context is there.
func (c *Controller) wakeStatus() {
	select {
	case c.statusWake <- struct{}{}:
	default:
	}
}

// runGatewayStatus writes the Gateway API status of each push to the
// cluster while this replica holds the status Lease, and creates Istio's
// default GatewayClasses when it becomes the leader; nil at once without
// a cluster.
func (c *Controller) runGatewayStatus(ctx context.Context) error {
	if c.opts.Kube == nil {
		return nil
	}
	client, err := kubernetes.NewForConfig(c.opts.Kube)
	if err != nil {
		return fmt.Errorf("control: gateway status: %w", err)
	}
	dyn, err := dynamic.NewForConfig(c.opts.Kube)
	if err != nil {
		return fmt.Errorf("control: gateway status: %w", err)
	}
	w := &gwstatus.Writer{Client: dyn, Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))}
	lead := c.leading(c.opts.Kube, gatewayStatusLease)
	lead(ctx, func(ctx context.Context) {
		if created, err := w.EnsureDefaultClasses(ctx); err != nil {
			c.log.Warn("default GatewayClasses", "err", err)
		} else if len(created) > 0 {
			c.log.Info("created Istio's default GatewayClasses", "classes", created)
		}
		w.Deployed = nil
		// Addresses and Programmed from the Gateways' Services, whoever
		// provisions them (the deployment controller may lead elsewhere).
		if dep := c.gatewayDeployment(client, true); dep != nil {
			go dep.Run(ctx)
			// The first status after taking the Lease has the Services'
			// view, not the config's alone (no Programmed flapping).
			if !dep.WaitSynced(ctx, 30*time.Second) {
				c.log.Warn("gateway addresses not resolved yet; status written without them meanwhile")
			}
			w.Deployed = func(ns, name string) ([]gwv1.GatewayStatusAddress, []gatewayapi.Condition, bool) {
				st, ok := dep.Status(ns, name)
				return st.Addresses, st.Conditions(), ok
			}
		}
		if !c.opts.DisableValidationStatus {
			go c.writeValidationWhileLeading(ctx, client, dyn)
		}
		c.writeStatusWhileLeading(ctx, w)
	})
	return nil
}

// leading runs work while this replica holds the Lease name in the
// control plane's namespace (pkg/kube/leader), until ctx ends.
func (c *Controller) leading(kube *rest.Config, name string) func(ctx context.Context, work func(ctx context.Context)) {
	return func(ctx context.Context, work func(ctx context.Context)) {
		client, err := kubernetes.NewForConfig(kube)
		if err != nil {
			c.log.Error("leader election", "lease", name, "err", err)
			return
		}
		host, _ := os.Hostname()
		err = leader.Run(ctx, leader.Options{Client: client, Namespace: c.opts.controlNamespace(), Name: name,
			Identity: fmt.Sprintf("%s-%d", host, os.Getpid())}, func(ctx context.Context) {
			c.log.Info("leading", "lease", c.opts.controlNamespace()+"/"+name)
			work(ctx)
		})
		if err != nil {
			c.log.Error("leader election", "lease", name, "err", err)
		}
	}
}

// writeStatusWhileLeading writes the newest push's status now and after
// every push, retrying a failed write, until ctx ends.
func (c *Controller) writeStatusWhileLeading(ctx context.Context, w *gwstatus.Writer) {
	var retry <-chan time.Time
	for {
		if pc := c.push.Load(); pc != nil {
			res, err := w.Write(ctx, pc.GatewayAPIStatus())
			retry = nil
			if err != nil && ctx.Err() == nil {
				c.log.Warn("Gateway API status not written; trying again", "err", err, "in", statusRetry)
				retry = time.After(statusRetry)
			} else if res.Updated > 0 {
				c.log.Info("Gateway API status written", "version", pc.Version, "updated", res.Updated, "unchanged", res.Unchanged)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-c.statusWake:
		case <-retry:
		}
	}
}
