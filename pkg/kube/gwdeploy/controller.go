// Package gwdeploy is Istio's gateway deployment controller
// (pilot/pkg/config/kube/gatewaycommon/deploymentcontroller.go with
// manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml)
// for sluice: for each Gateway of an Istio GatewayClass
// (istio.io/gateway-controller, or sluice's own controller name) in this
// control plane's revision, it server-side applies a ServiceAccount, a
// Deployment running `sluice proxy --type router` and a Service, named
// <gateway>-<class>, owned by the Gateway (the garbage collector deletes
// them with it). A Gateway whose spec.addresses name an existing Service
// (one Hostname) is a manual deployment: nothing is provisioned, the
// Service is only resolved for status. It also computes each Gateway's
// status.addresses and Programmed condition from its Service and the
// Service's EndpointSlices, as istiod's ResolveGatewayInstances.
package gwdeploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
	gwlisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"

	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
)

// Options configure a Controller.
type Options struct {
	Client  kubernetes.Interface
	Gateway gwclient.Interface
	// Revision is the control plane's revision ("" or "default": the
	// default revision).
	Revision string
	// Image is the sluice image the gateway pods run.
	Image string
	// XDSAddress is the control plane's xDS/CA address as pods reach it.
	XDSAddress string
	// TrustDomain is the mesh's (MeshConfig trustDomain).
	TrustDomain string
	// ClusterDomain is the cluster's DNS domain (default cluster.local).
	ClusterDomain string
	// SystemNamespace is the control plane's namespace, where the class
	// defaults ConfigMaps are (default istio-system).
	SystemNamespace string
	// StatusOnly resolves Gateways for Status and provisions nothing (the
	// status writer's copy; the provisioning one may run elsewhere).
	StatusOnly bool
	// OnStatus, when set, is called when a Gateway's addresses or
	// Programmed condition may have changed.
	OnStatus func()
	Logger   *slog.Logger
}

// Controller provisions Gateways' deployments and resolves their status.
type Controller struct {
	opts  Options
	queue workqueue.TypedRateLimitingInterface[types.NamespacedName]

	gateways gwlisters.GatewayLister
	classes  gwlisters.GatewayClassLister
	// configMaps customize Gateways (parametersRef, class defaults).
	configMaps corelisters.ConfigMapLister
	kube       kubeinformers.SharedInformerFactory
	gwf        gwinformers.SharedInformerFactory
	rev        *revisions

	synced atomic.Bool

	mu    sync.Mutex
	state map[types.NamespacedName]*deployed
}

// deployed is what the last reconcile of a Gateway found.
type deployed struct {
	// services are the hostnames (name.ns.svc.<domain>) serving the
	// Gateway: the provisioned Service, or the manual addresses.
	services []string
	managed  bool
	// err is why the Gateway is not deployed (reported in Programmed).
	err error
	// params is why its parametersRef is not usable (Accepted False,
	// InvalidParameters); nothing is applied meanwhile.
	params error
}

// New prepares a controller; Run starts it.
func New(opts Options) (*Controller, error) {
	if opts.Client == nil || opts.Gateway == nil {
		return nil, errors.New("gateway deployment: Kubernetes and Gateway API clients are required")
	}
	if opts.ClusterDomain == "" {
		opts.ClusterDomain = "cluster.local"
	}
	if opts.SystemNamespace == "" {
		opts.SystemNamespace = "istio-system"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Controller{opts: opts, state: map[types.NamespacedName]*deployed{},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName]())}
	c.gwf = gwinformers.NewSharedInformerFactory(opts.Gateway, 0)
	c.kube = kubeinformers.NewSharedInformerFactory(opts.Client, 0)
	gws := c.gwf.Gateway().V1().Gateways()
	classes := c.gwf.Gateway().V1().GatewayClasses()
	c.gateways, c.classes = gws.Lister(), classes.Lister()
	c.rev = newRevisions(c.kube, opts.Revision)
	cms := c.kube.Core().V1().ConfigMaps()
	c.configMaps = cms.Lister()
	one := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if gw, ok := obj.(*gwv1.Gateway); ok {
			c.queue.Add(types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name})
		}
	}
	all := func(any) { c.enqueueAll() }
	_, _ = gws.Informer().AddEventHandler(handler(one))
	_, _ = classes.Informer().AddEventHandler(handler(all))
	// A Service or EndpointSlice changes a Gateway's addresses and
	// Programmed; a namespace's or tag webhook's istio.io/rev which
	// revision deploys it.
	_, _ = c.kube.Core().V1().Services().Informer().AddEventHandler(handler(func(obj any) {
		c.enqueueOwner(obj)
		if o, ok := meta(obj); ok && c.tracks(o.GetNamespace(), o.GetName()) {
			c.notify()
		}
	}))
	_, _ = c.kube.Discovery().V1().EndpointSlices().Informer().AddEventHandler(handler(func(obj any) {
		if o, ok := meta(obj); ok && c.tracks(o.GetNamespace(), o.GetLabels()["kubernetes.io/service-name"]) {
			c.notify()
		}
	}))
	// One of our autoscalers or disruption budgets edited or deleted by
	// someone is put back (Istio's parentHandler).
	_, _ = c.kube.Autoscaling().V2().HorizontalPodAutoscalers().Informer().AddEventHandler(handler(c.enqueueOwner))
	_, _ = c.kube.Policy().V1().PodDisruptionBudgets().Informer().AddEventHandler(handler(c.enqueueOwner))
	_, _ = c.kube.Core().V1().Namespaces().Informer().AddEventHandler(handler(all))
	// A customizing ConfigMap's edit re-renders the Gateways it customizes
	// (before and after: a class defaults label may come or go).
	_, _ = cms.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: c.enqueueCustomized,
		UpdateFunc: func(old, cur any) { c.enqueueCustomized(old); c.enqueueCustomized(cur) }, DeleteFunc: c.enqueueCustomized})
	c.rev.onChange(c.enqueueAll)
	return c, nil
}

// enqueueCustomized enqueues the Gateways a ConfigMap customizes.
func (c *Controller) enqueueCustomized(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if cm, ok := obj.(*corev1.ConfigMap); ok {
		for _, gw := range c.gatewaysForConfigMap(cm) {
			c.queue.Add(types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name})
		}
	}
}

func handler(f func(any)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, o any) { f(o) }, DeleteFunc: f}
}

func (c *Controller) notify() {
	if c.opts.OnStatus != nil {
		c.opts.OnStatus()
	}
}

func (c *Controller) enqueueAll() {
	gws, _ := c.gateways.List(labels.Everything())
	for _, gw := range gws {
		c.queue.Add(types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name})
	}
}

// meta is an informer object's metadata (a tombstone's too).
func meta(obj any) (metav1.Object, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	o, ok := obj.(metav1.Object)
	return o, ok
}

// tracks says whether a Service serves a Gateway this controller reports
// on: only its changes wake the status writer.
func (c *Controller) tracks(ns, name string) bool {
	host := c.hostname(name, ns)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.state {
		if slices.Contains(d.services, host) {
			return true
		}
	}
	return false
}

// enqueueOwner re-reconciles the Gateway owning a changed Service,
// autoscaler or disruption budget (one of ours edited or deleted by
// someone is put back).
func (c *Controller) enqueueOwner(obj any) {
	o, ok := meta(obj)
	if !ok || o.GetLabels()[LabelManaged] != ManagedValue || o.GetLabels()[LabelGatewayName] == "" {
		return
	}
	c.queue.Add(types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetLabels()[LabelGatewayName]})
}

// Run watches and reconciles until ctx ends (Istio runs it on the
// leader only; so does sluice's control plane). Every Gateway is
// reconciled once before Synced reports true.
func (c *Controller) Run(ctx context.Context) {
	defer c.queue.ShutDown()
	if !c.waitServed(ctx) {
		return
	}
	c.gwf.Start(ctx.Done())
	c.kube.Start(ctx.Done())
	for typ, ok := range c.gwf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			c.opts.Logger.Warn("gateway deployment: informer not synced", "type", typ)
		}
	}
	c.kube.WaitForCacheSync(ctx.Done())
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	gws, _ := c.gateways.List(labels.Everything())
	for _, gw := range gws {
		c.process(ctx, types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name})
	}
	c.synced.Store(true)
	c.notify()
	for {
		key, quit := c.queue.Get()
		if quit {
			return
		}
		c.process(ctx, key)
		c.queue.Done(key)
	}
}

// waitServed waits until the API server serves Gateway API v1's Gateways
// and GatewayClasses (their CRDs may be installed later), checking every
// servedPoll; meanwhile there is no Gateway to resolve, so Synced is true.
// False when ctx ends first.
func (c *Controller) waitServed(ctx context.Context) bool {
	logged := false
	for {
		list, err := c.opts.Client.Discovery().ServerResourcesForGroupVersion(gwv1.GroupVersion.String())
		found := 0
		if err == nil {
			for _, r := range list.APIResources {
				if r.Name == "gateways" || r.Name == "gatewayclasses" {
					found++
				}
			}
		}
		if found == 2 {
			return true
		}
		c.synced.Store(true)
		if !logged {
			c.opts.Logger.Info("gateway deployment: the cluster does not serve Gateway API v1 Gateways yet; checking again", "every", servedPoll)
			logged = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(servedPoll):
		}
	}
}

// servedPoll is how often waitServed looks for the Gateway API CRDs.
const servedPoll = 10 * time.Second

// process reconciles one Gateway, retrying it later with back-off on
// failure.
func (c *Controller) process(ctx context.Context, key types.NamespacedName) {
	if err := c.reconcile(ctx, key); err != nil && ctx.Err() == nil {
		c.opts.Logger.Warn("gateway deployment failed; retrying", "gateway", key.String(), "err", err)
		c.queue.AddRateLimited(key)
		return
	}
	c.queue.Forget(key)
}

// Synced reports whether every Gateway has been reconciled once.
func (c *Controller) Synced() bool { return c.synced.Load() }

// setState records what reconcile found and wakes the status writer.
func (c *Controller) setState(key types.NamespacedName, d *deployed) {
	c.mu.Lock()
	if d == nil {
		delete(c.state, key)
	} else {
		c.state[key] = d
	}
	c.mu.Unlock()
	c.notify()
}

// reconcile brings one Gateway's deployment in line (Istio's Reconcile and
// configureIstioGateway).
func (c *Controller) reconcile(ctx context.Context, key types.NamespacedName) error {
	gw, err := c.gateways.Gateways(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		c.setState(key, nil) // its objects go with it (owner references)
		return nil
	}
	if err != nil {
		return err
	}
	if !c.ours(gw) || !c.rev.isMine(gw.ObjectMeta) || !newerControllerAllows(gw) {
		c.setState(key, nil)
		return nil
	}
	params, perr := c.parameters(gw)
	var invalid *paramsError
	if perr != nil && !errors.As(perr, &invalid) {
		return fmt.Errorf("Gateway %s: %w", key, perr)
	}
	if host, manual, err := c.manual(gw); manual || err != nil {
		c.setState(key, &deployed{services: host, err: err, params: perr})
		return nil
	}
	in, err := c.newInput(gw)
	var objs []*object
	if err == nil && perr == nil {
		objs, err = in.objects(c.overlays(gw, params))
		if errors.As(err, &invalid) {
			perr, err = err, nil
		}
	}
	if (err != nil || perr != nil) && !c.opts.StatusOnly {
		c.opts.Logger.Warn("Gateway not deployed", "gateway", key.String(), "err", errors.Join(err, perr))
	}
	switch {
	case err != nil:
		c.setState(key, &deployed{managed: true, err: fmt.Errorf("Gateway %s: %w", key, err), params: perr})
		return nil
	case perr != nil:
		// As istiod: nothing rendered; its Service (if any) still resolved.
		c.setState(key, &deployed{managed: true, services: []string{c.hostname(in.name, gw.Namespace)}, params: perr})
		return nil
	}
	if !c.opts.StatusOnly {
		if err := c.apply(ctx, gw, objs); err != nil {
			return fmt.Errorf("Gateway %s: %w", key, err)
		}
	}
	c.setState(key, &deployed{managed: true, services: []string{c.hostname(in.name, gw.Namespace)}})
	return nil
}

// ours says whether the Gateway's class is an Istio gateway class sluice
// deploys: its GatewayClass's controller, or Istio's built-in class
// "istio" when no GatewayClass of that name exists (Istio's
// BuiltinGatewayClasses). Waypoints (istio-waypoint) are not deployed:
// sluice does not implement them (their status says so).
func (c *Controller) ours(gw *gwv1.Gateway) bool {
	class, err := c.classes.Get(string(gw.Spec.GatewayClassName))
	if err != nil {
		return gw.Spec.GatewayClassName == "istio"
	}
	n := string(class.Spec.ControllerName)
	return n == gatewayapi.IstioControllerName || n == gatewayapi.ControllerName
}

// newerControllerAllows is Istio's ManagedGatewayControllerVersion: a
// Gateway whose gateway.istio.io/controller-version is newer than
// ControllerVersion (or not a number) belongs to another controller.
func newerControllerAllows(gw *gwv1.Gateway) bool {
	cur, ok := gw.Annotations[AnnotationControllerVersion]
	if !ok {
		return true
	}
	n, err := strconv.Atoi(cur)
	return err == nil && n <= ControllerVersion
}

// manual is Istio's IsManaged turned round: a Gateway with one Hostname
// address uses an existing Service (a short name is in the Gateway's
// namespace); none or one IPAddress is managed (the IP becomes the
// LoadBalancer's). Several addresses, or a NamedAddress, are rejected as
// Istio does not support them.
func (c *Controller) manual(gw *gwv1.Gateway) ([]string, bool, error) {
	a := gw.Spec.Addresses
	switch {
	case len(a) == 0:
		return nil, false, nil
	case len(a) > 1:
		return nil, true, fmt.Errorf("Gateway %s/%s: spec.addresses: only one address is supported (Istio's rule: one Gateway, one Service)", gw.Namespace, gw.Name)
	case a[0].Type == nil || *a[0].Type == gwv1.IPAddressType:
		return nil, false, nil
	case *a[0].Type == gwv1.HostnameAddressType:
		return []string{c.qualify(a[0].Value, gw.Namespace)}, true, nil
	}
	return nil, true, fmt.Errorf("Gateway %s/%s: spec.addresses[0].type %s is not supported (Hostname: an existing Service; IPAddress: the provisioned LoadBalancer's IP)", gw.Namespace, gw.Name, *a[0].Type)
}

func (c *Controller) hostname(name, ns string) string {
	return name + "." + ns + ".svc." + c.opts.ClusterDomain
}

// qualify makes a short Service name (name, or name.ns) a full hostname.
func (c *Controller) qualify(h, ns string) string {
	n := 0
	for _, r := range h {
		if r == '.' {
			n++
		}
	}
	switch n {
	case 0:
		return c.hostname(h, ns)
	case 1:
		return h + ".svc." + c.opts.ClusterDomain
	}
	return h
}

// WaitSynced waits until Synced, or timeout or ctx ends; whether synced.
func (c *Controller) WaitSynced(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !c.Synced() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	return c.Synced()
}
