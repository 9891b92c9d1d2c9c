package gwdeploy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	kubeinformers "k8s.io/client-go/informers"
	admissionlisters "k8s.io/client-go/listers/admissionregistration/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/sluice-mesh/sluice/pkg/kube/inject"
)

// LabelTag names a revision tag on its MutatingWebhookConfiguration
// (istio.io/tag, with istio.io/rev the revision it points at), as
// `istioctl tag set` and Istio's revision-tags chart write it.
const LabelTag = "istio.io/tag"

// revisions is Istio's tag watcher (pkg/revisions/tag_watcher.go) as far
// as Gateways need it: which istio.io/rev values are this control plane's.
type revisions struct {
	revision   string
	namespaces corelisters.NamespaceLister
	webhooks   admissionlisters.MutatingWebhookConfigurationLister
	informer   cache.SharedIndexInformer
}

func newRevisions(f kubeinformers.SharedInformerFactory, rev string) *revisions {
	if rev == "" {
		rev = inject.DefaultRevision
	}
	wh := f.Admissionregistration().V1().MutatingWebhookConfigurations()
	return &revisions{revision: rev, namespaces: f.Core().V1().Namespaces().Lister(),
		webhooks: wh.Lister(), informer: wh.Informer()}
}

// onChange calls f when a webhook configuration (a tag) changes.
func (r *revisions) onChange(f func()) {
	_, _ = r.informer.AddEventHandler(handler(func(any) { f() }))
}

// myTags are the revision and the tags pointing at it.
func (r *revisions) myTags() sets.Set[string] {
	tags := sets.New(r.revision)
	whs, _ := r.webhooks.List(labels.Everything())
	for _, wh := range whs {
		if t, ok := wh.Labels[LabelTag]; ok && wh.Labels[inject.LabelRevision] == r.revision {
			tags.Insert(t)
		}
	}
	return tags
}

// isMine is the tag watcher's IsMine: the object's istio.io/rev, else its
// namespace's, names this revision or one of its tags; an object with
// neither belongs to whoever holds the "default" tag (the default
// revision, unless a default tag points elsewhere).
func (r *revisions) isMine(obj metav1.ObjectMeta) bool {
	sel, ok := obj.Labels[inject.LabelRevision]
	if !ok {
		if ns, err := r.namespaces.Get(obj.Namespace); err == nil {
			sel = ns.Labels[inject.LabelRevision]
		}
	}
	tags := r.myTags()
	if sel != "" {
		return tags.Has(sel)
	}
	if tags.Has(inject.DefaultRevision) {
		return true
	}
	return false
}
