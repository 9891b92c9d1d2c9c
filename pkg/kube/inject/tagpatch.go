package inject

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// LabelTag marks a revision tag's configuration (istioctl tag set:
// istio-revision-tag-<tag>, labelled istio.io/tag=<tag> and
// istio.io/rev=<the revision it points at>).
const LabelTag = "istio.io/tag"

// tagSelector selects the revision tags pointing at this revision: their
// webhooks call this control plane, so their caBundle is its roots, as
// istiod's webhook patcher patches every configuration of its revision.
func (p *patcher) tagSelector() string {
	return LabelTag + "," + LabelRevision + "=" + p.opts.Webhook.revision()
}

// watchTags pokes on every change of a tag configuration of this revision.
func (p *patcher) watchTags(ctx context.Context, poke func()) informers.SharedInformerFactory {
	f := informers.NewSharedInformerFactoryWithOptions(p.client, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
		lo.LabelSelector = p.tagSelector()
	}))
	f.Admissionregistration().V1().MutatingWebhookConfigurations().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() },
	})
	f.Start(ctx.Done())
	return f
}

// reconcileTags sets the caBundle of the tag configurations' injector
// webhooks to the CA's roots.
func (p *patcher) reconcileTags(ctx context.Context) error {
	api := p.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	list, err := api.List(ctx, metav1.ListOptions{LabelSelector: p.tagSelector()})
	if err != nil {
		return fmt.Errorf("list revision tags: %w", err)
	}
	roots := p.opts.CA.RootPEM()
	for i := range list.Items {
		cfg := &list.Items[i]
		changed := false
		for j := range cfg.Webhooks {
			w := &cfg.Webhooks[j]
			if strings.HasSuffix(w.Name, WebhookSuffix) && !bytes.Equal(w.ClientConfig.CABundle, roots) {
				w.ClientConfig.CABundle = roots
				changed = true
			}
		}
		if !changed {
			continue
		}
		if _, err := api.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("revision tag %s: update caBundle: %w", cfg.Name, err)
		}
		p.patches.Add(1)
		p.opts.Logger.Info("revision tag caBundle patched", "name", cfg.Name, "ca_version", p.opts.CA.Version())
	}
	return nil
}
