package inject

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/sluice-mesh/sluice/pkg/ca"
)

// RootCertKey is the key of the mesh root in RootCertConfigMap.
const RootCertKey = "root-cert.pem"

// rootCertSkipped are the namespaces without the root ConfigMap (Istio's
// NamespaceController: inject.IgnoredNamespaces less kube-system).
var rootCertSkipped = []string{metav1.NamespacePublic, "kube-node-lease", "local-path-storage"}

// rootCerts keeps the ConfigMap istio-ca-root-cert (label
// istio.io/config=true, key root-cert.pem: the CA's roots) in every
// namespace, as istiod's NamespaceController: injected pods mount it to
// verify the control plane. A namespace added, its ConfigMap changed or
// deleted, or the CA's roots changed, are reconciled.
type rootCerts struct {
	client     kubernetes.Interface
	ca         *ca.CA
	checkEvery time.Duration
	report     func(ns string, err error)

	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{}
}

func (r *rootCerts) enqueue(ns string) {
	if slices.Contains(rootCertSkipped, ns) {
		return
	}
	r.mu.Lock()
	r.pending[ns] = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *rootCerts) run(ctx context.Context) {
	r.pending, r.wake = map[string]bool{}, make(chan struct{}, 1)
	f := informers.NewSharedInformerFactory(r.client, 0)
	nsInf := f.Core().V1().Namespaces().Informer()
	nsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.namespace(o) },
		UpdateFunc: func(_, o any) { r.namespace(o) },
	})
	cmf := informers.NewSharedInformerFactoryWithOptions(r.client, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
		lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", RootCertConfigMap).String()
	}))
	cmInf := cmf.Core().V1().ConfigMaps().Informer()
	onCM := func(o any) {
		if tomb, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = tomb.Obj
		}
		if cm, ok := o.(*corev1.ConfigMap); ok {
			r.enqueue(cm.Namespace)
		}
	}
	cmInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onCM, UpdateFunc: func(_, o any) { onCM(o) }, DeleteFunc: onCM})
	f.Start(ctx.Done())
	cmf.Start(ctx.Done())
	defer f.Shutdown()
	defer cmf.Shutdown()
	tick := time.NewTicker(r.checkEvery)
	defer tick.Stop()
	version := r.ca.Version()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-tick.C:
			if v := r.ca.Version(); v != version {
				version = v
				for _, o := range nsInf.GetStore().List() {
					r.namespace(o)
				}
			}
			continue
		}
		r.mu.Lock()
		batch := r.pending
		r.pending = map[string]bool{}
		r.mu.Unlock()
		for ns := range batch {
			if err := r.reconcile(ctx, ns); err != nil && ctx.Err() == nil {
				r.report(ns, err)
			}
		}
	}
}

func (r *rootCerts) namespace(o any) {
	if ns, ok := o.(*corev1.Namespace); ok && ns.Status.Phase != corev1.NamespaceTerminating {
		r.enqueue(ns.Name)
	}
}

func (r *rootCerts) reconcile(ctx context.Context, ns string) error {
	api := r.client.CoreV1().ConfigMaps(ns)
	root := string(r.ca.RootPEM())
	cm, err := api.Get(ctx, RootCertConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootCertConfigMap, Namespace: ns, Labels: map[string]string{"istio.io/config": "true"}},
			Data:       map[string]string{RootCertKey: root},
		}
		if _, err := api.Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) && !apierrors.IsForbidden(err) {
			return fmt.Errorf("create ConfigMap %s/%s: %w", ns, RootCertConfigMap, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get ConfigMap %s/%s: %w", ns, RootCertConfigMap, err)
	}
	if cm.Data[RootCertKey] == root {
		return nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[RootCertKey] = root
	if _, err := api.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update ConfigMap %s/%s: %w", ns, RootCertConfigMap, err)
	}
	return nil
}
