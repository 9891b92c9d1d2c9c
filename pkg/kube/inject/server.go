package inject

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/sluice-mesh/sluice/pkg/ca"
)

// DefaultWebhookAddress is istiod's webhook port (15017; its Service
// maps 443 to it).
const DefaultWebhookAddress = ":15017"

// ServerOptions configure the webhook sluice control serves when it has
// a Kubernetes client.
type ServerOptions struct {
	RESTConfig *rest.Config
	// CA signs the serving certificate; its roots are the caBundle.
	CA *ca.CA
	// Address is where the webhook listens (default DefaultWebhookAddress).
	Address string
	// Webhook names the configuration and how the API server reaches us.
	Webhook WebhookOptions
	// Template is the sidecar template config; NativeSidecar is set from
	// the API server's version.
	Template Config
	// ProxyConfig, if set, is read per request for Template.ProxyConfig:
	// the mesh's defaultConfig as in force (the cluster's mesh ConfigMap
	// may change it), as Istio's webhook follows the mesh watcher.
	ProxyConfig func() *meshv1alpha1.ProxyConfig
	// CheckEvery is how often the CA's roots are compared with the
	// caBundle (besides every change of the configuration; default 5s).
	CheckEvery time.Duration
	Logger     *slog.Logger
	// Metrics, if set, count the webhook's requests.
	Metrics *Metrics
	// Ready, if set, is called with the bound address once serving.
	Ready func(addr string)
	// Lead, if set, runs work (the configuration's caBundle and the root
	// certificate ConfigMaps) only while this replica is the leader, and
	// blocks until ctx ends: every replica serves the webhook, one
	// writes. Nil: work always runs.
	Lead func(ctx context.Context, work func(ctx context.Context))
}

// Run serves the webhook over TLS with a certificate from the mesh CA
// for the webhook Service's names (and the listen host), creates the
// MutatingWebhookConfiguration if absent and keeps its caBundle equal to
// the CA's roots (as istiod's webhook patcher), and keeps the
// istio-ca-root-cert ConfigMap injected pods mount in every namespace
// (rootcert.go), until ctx ends.
func Run(ctx context.Context, o ServerOptions) error {
	if o.Address == "" {
		o.Address = DefaultWebhookAddress
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = 5 * time.Second
	}
	client, err := kubernetes.NewForConfig(o.RESTConfig)
	if err != nil {
		return fmt.Errorf("injection webhook: %w", err)
	}
	native, err := nativeSidecars(client)
	if err != nil {
		return fmt.Errorf("injection webhook: %w", err)
	}
	tmpl := o.Template
	tmpl.NativeSidecar = native
	ns := o.Webhook.Namespace
	hosts := append(ca.ServingHosts(o.Address), o.Webhook.ServiceName()+"."+ns+".svc", o.Webhook.ServiceName()+"."+ns+".svc.cluster.local")
	sc := &ca.ServingCert{CA: o.CA, Hosts: hosts}
	ln, err := tls.Listen("tcp", o.Address, &tls.Config{GetCertificate: sc.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		return fmt.Errorf("injection webhook: %w", err)
	}
	mux := http.NewServeMux()
	config := func() Config {
		t := tmpl
		if o.ProxyConfig != nil {
			t.ProxyConfig = o.ProxyConfig()
		}
		return t
	}
	h := &Handler{Config: config, Logger: o.Logger, Metrics: o.Metrics}
	mux.Handle("/inject", h)
	mux.Handle("/inject/", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	o.Logger.Info("injection webhook serving", "address", ln.Addr().String(), "configuration", o.Webhook.ConfigurationName(), "native_sidecar", native)
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}
	rc := &rootCerts{client: client, ca: o.CA, checkEvery: o.CheckEvery, report: func(ns string, err error) {
		o.Logger.Warn("mesh root certificate ConfigMap", "namespace", ns, "err", err)
	}}
	work := func(ctx context.Context) {
		go rc.run(ctx)
		if err := (&patcher{client: client, opts: o}).run(ctx); err != nil {
			o.Logger.Warn("injection webhook configuration", "err", err)
		}
	}
	if o.Lead == nil {
		work(ctx)
		return nil
	}
	o.Lead(ctx, work)
	return nil
}

// nativeSidecars: Kubernetes sidecar containers (init containers with
// restartPolicy Always) are on by default from 1.29.
func nativeSidecars(client kubernetes.Interface) (bool, error) {
	info, err := client.Discovery().ServerVersion()
	if err != nil {
		return false, fmt.Errorf("server version: %w", err)
	}
	v, err := version.ParseGeneric(info.GitVersion)
	if err != nil {
		return false, fmt.Errorf("server version %q: %w", info.GitVersion, err)
	}
	return v.AtLeast(version.MajorMinor(1, 29)), nil
}

// patcher keeps the configuration present with the CA's roots as
// caBundle: on each change of the configuration (an informer on its
// name) and of the CA.
type patcher struct {
	client kubernetes.Interface
	opts   ServerOptions
	// Patches counts the writes (tests).
	patches atomic.Int64
}

func (p *patcher) run(ctx context.Context) error {
	name := p.opts.Webhook.ConfigurationName()
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	f := informers.NewSharedInformerFactoryWithOptions(p.client, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
		lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	}))
	inf := f.Admissionregistration().V1().MutatingWebhookConfigurations().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }, DeleteFunc: func(any) { poke() },
	})
	f.Start(ctx.Done())
	defer f.Shutdown()
	tags := p.watchTags(ctx, poke) // tagpatch.go
	defer tags.Shutdown()
	tick := time.NewTicker(p.opts.CheckEvery)
	defer tick.Stop()
	lastVersion := ""
	poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-tick.C:
			if v := p.opts.CA.Version(); v == lastVersion {
				continue
			}
		}
		lastVersion = p.opts.CA.Version()
		if err := errors.Join(p.reconcile(ctx), p.reconcileTags(ctx)); err != nil && ctx.Err() == nil {
			p.opts.Logger.Warn("injection webhook configuration", "name", name, "err", err)
			lastVersion = "" // retried at the next tick
		}
	}
}

// reconcile creates the configuration with Istio's webhooks, or patches
// the caBundle of its webhooks named *sidecar-injector.istio.io (the
// others, and every other field, are the installer's).
func (p *patcher) reconcile(ctx context.Context) error {
	api := p.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	wo := p.opts.Webhook
	wo.CABundle = p.opts.CA.RootPEM()
	name := wo.ConfigurationName()
	cur, err := api.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cfg := &admissionregv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelRevision: wo.revision(), "app": "sidecar-injector"}},
			Webhooks:   Webhooks(wo),
		}
		if _, err := api.Create(ctx, cfg, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create: %w", err)
		}
		p.patches.Add(1)
		p.opts.Logger.Info("injection webhook configuration created", "name", name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	changed := false
	for i := range cur.Webhooks {
		w := &cur.Webhooks[i]
		if strings.HasSuffix(w.Name, WebhookSuffix) && !bytes.Equal(w.ClientConfig.CABundle, wo.CABundle) {
			w.ClientConfig.CABundle = wo.CABundle
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if _, err := api.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) {
			return errors.New("changed meanwhile; patched at its next event")
		}
		return fmt.Errorf("update caBundle: %w", err)
	}
	p.patches.Add(1)
	p.opts.Logger.Info("injection webhook caBundle patched", "name", name, "ca_version", p.opts.CA.Version())
	return nil
}
