package install

import (
	"context"
	"errors"
	"fmt"
	"sort"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sluice-mesh/sluice/pkg/kube/inject"
)

// Revision tags, as istioctl's (istioctl/pkg/tag): a tag is a
// MutatingWebhookConfiguration istio-revision-tag-<tag> whose webhooks
// select namespaces and pods labelled istio.io/rev=<tag> (and, for the tag
// "default", istio-injection=enabled) and send them to the revision's
// injector; moving a tag moves those namespaces to another revision (a
// canary upgrade) without relabelling them.

// LabelTag names a tag webhook's tag (Istio's istio.io/tag).
const LabelTag = "istio.io/tag"

// TagWebhookName is the tag's configuration name.
func TagWebhookName(tag string) string { return "istio-revision-tag-" + tag }

// Tag is one revision tag.
type Tag struct {
	Name, Revision string
	// Namespaces are those labelled istio.io/rev=<tag>.
	Namespaces []string
}

// TagOptions configure SetTag.
type TagOptions struct {
	Tag, Revision, Namespace string
	// Overwrite allows moving an existing tag to another revision.
	Overwrite bool
}

// SetTag creates or moves tag o.Tag to revision o.Revision: the
// revision's injector must exist (its configuration
// istio-sidecar-injector[-<rev>]), the tag must not be a revision's name,
// and the tag's webhooks get the revision's caBundle, as istioctl's.
func SetTag(ctx context.Context, cs kubernetes.Interface, o TagOptions) (*admissionregv1.MutatingWebhookConfiguration, error) {
	if o.Tag == "" {
		return nil, errors.New("tag set: a tag name is required")
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	api := cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	revOpts := inject.WebhookOptions{Revision: o.Revision, Namespace: o.Namespace}
	canon, err := api.Get(ctx, revOpts.ConfigurationName(), metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("tag set %s: revision %q: MutatingWebhookConfiguration %s: %w", o.Tag, revName(o.Revision), revOpts.ConfigurationName(), err)
	}
	clash := inject.WebhookOptions{Revision: o.Tag, Namespace: o.Namespace}.ConfigurationName()
	if _, err := api.Get(ctx, clash, metav1.GetOptions{}); err == nil {
		return nil, fmt.Errorf("tag set %s: a control plane revision of that name exists (MutatingWebhookConfiguration %s)", o.Tag, clash)
	}
	if cur, err := api.Get(ctx, TagWebhookName(o.Tag), metav1.GetOptions{}); err == nil && !o.Overwrite && cur.Labels[inject.LabelRevision] != revName(o.Revision) {
		return nil, fmt.Errorf("tag set %s: the tag points at revision %s; --overwrite moves it", o.Tag, cur.Labels[inject.LabelRevision])
	}
	want := tagWebhook(o, caBundle(canon))
	cur, err := api.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		out, err := api.Create(ctx, want, metav1.CreateOptions{FieldManager: FieldManager})
		if err != nil {
			return nil, fmt.Errorf("tag set %s: %w", o.Tag, err)
		}
		return out, nil
	case err != nil:
		return nil, fmt.Errorf("tag set %s: %w", o.Tag, err)
	}
	want.ResourceVersion = cur.ResourceVersion
	out, err := api.Update(ctx, want, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		return nil, fmt.Errorf("tag set %s: %w", o.Tag, err)
	}
	return out, nil
}

// tagWebhook is the injector's webhooks for revision o.Tag, sent to
// revision o.Revision's Service.
func tagWebhook(o TagOptions, ca []byte) *admissionregv1.MutatingWebhookConfiguration {
	hooks := inject.Webhooks(inject.WebhookOptions{Revision: o.Tag, Namespace: o.Namespace, CABundle: ca})
	svc := inject.WebhookOptions{Revision: o.Revision, Namespace: o.Namespace}.ServiceName()
	for i := range hooks {
		if s := hooks[i].ClientConfig.Service; s != nil {
			s.Name = svc
		}
	}
	return &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: TagWebhookName(o.Tag), Labels: map[string]string{
			LabelTag: o.Tag, inject.LabelRevision: revName(o.Revision), "app": "sidecar-injector",
			LabelManagedBy: ManagedBy, "app.kubernetes.io/part-of": "sluice", LabelRevision: revName(o.Revision),
		}},
		Webhooks: hooks,
	}
}

func caBundle(cfg *admissionregv1.MutatingWebhookConfiguration) []byte {
	for _, w := range cfg.Webhooks {
		if len(w.ClientConfig.CABundle) > 0 {
			return w.ClientConfig.CABundle
		}
	}
	return nil
}

func revName(r string) string {
	if r == "" {
		return inject.DefaultRevision
	}
	return r
}

// ListTags lists the revision tags and the namespaces using each.
func ListTags(ctx context.Context, cs kubernetes.Interface) ([]Tag, error) {
	list, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{LabelSelector: LabelTag})
	if err != nil {
		return nil, fmt.Errorf("tag list: %w", err)
	}
	var tags []Tag
	for _, w := range list.Items {
		t := Tag{Name: w.Labels[LabelTag], Revision: w.Labels[inject.LabelRevision]}
		nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: inject.LabelRevision + "=" + t.Name})
		if err != nil {
			return nil, fmt.Errorf("tag list: namespaces of %s: %w", t.Name, err)
		}
		for _, ns := range nss.Items {
			t.Namespaces = append(t.Namespaces, ns.Name)
		}
		tags = append(tags, t)
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].Name < tags[j].Name })
	return tags, nil
}

// RemoveTag deletes a tag; namespaces still labelled with it are no
// longer injected, so it is refused while any is, unless force.
func RemoveTag(ctx context.Context, cs kubernetes.Interface, tag string, force bool) error {
	if !force {
		nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: inject.LabelRevision + "=" + tag})
		if err != nil {
			return fmt.Errorf("tag remove %s: %w", tag, err)
		}
		if len(nss.Items) > 0 {
			return fmt.Errorf("tag remove %s: namespace %s (and %d more) still use it (istio.io/rev=%s); -y removes it anyway", tag, nss.Items[0].Name, len(nss.Items)-1, tag)
		}
	}
	err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, TagWebhookName(tag), metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("tag remove %s: no such tag (MutatingWebhookConfiguration %s)", tag, TagWebhookName(tag))
	}
	if err != nil {
		return fmt.Errorf("tag remove %s: %w", tag, err)
	}
	return nil
}
