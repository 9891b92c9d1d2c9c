package kubesource

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/config/filesource"
)

// objKey names one object of one informer.
type objKey struct {
	informer, namespace, name string
}

func (k objKey) String() string {
	if k.namespace == "" {
		return k.informer + " " + k.name
	}
	return k.informer + " " + k.namespace + "/" + k.name
}

func (k objKey) less(o objKey) bool {
	if k.informer != o.informer {
		return k.informer < o.informer
	}
	if k.namespace != o.namespace {
		return k.namespace < o.namespace
	}
	return k.name < o.name
}

// objState is what the source knows of one object.
type objState struct {
	rv string // resourceVersion of the content last converted
	// good is the last admitted version of each resource the object
	// defines (one, or none).
	good        []*config.Resource
	errs        config.Errors
	notEnforced []config.NotEnforced
}

// newInformer returns an informer for k feeding the source's objects.
func (s *Source) newInformer(k resolved) cache.SharedIndexInformer {
	tweak := func(o *metav1.ListOptions) { o.FieldSelector = k.fieldSelector }
	inf := dynamicinformer.NewFilteredDynamicInformer(s.dyn, k.gvr, metav1.NamespaceAll, 0, cache.Indexers{}, tweak).Informer()
	s.configure(inf, k.name, s.objectChanged(k.name), s.objectDeleted(k.name))
	return inf
}

// configure drops managedFields from stored objects (the control plane
// never reads them) and logs watch errors; the reflector retries itself.
func (s *Source) configure(inf cache.SharedIndexInformer, name string, upsert func(any), remove func(any)) {
	_ = inf.SetTransform(func(obj any) (any, error) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			u.SetManagedFields(nil)
		}
		return obj, nil
	})
	_ = inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		s.opts.Logf("config: kubernetes: watching %s: %v; the last good config stays, retrying", name, err)
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    upsert,
		UpdateFunc: func(_, obj any) { upsert(obj) },
		DeleteFunc: remove,
	})
}

func (s *Source) objectChanged(informer string) func(any) {
	return func(obj any) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		key := objKey{informer: informer, namespace: u.GetNamespace(), name: u.GetName()}
		s.mu.Lock()
		prev := s.objects[key]
		if prev != nil && prev.rv == u.GetResourceVersion() {
			s.mu.Unlock()
			return // a re-list or resync of what is already known
		}
		s.mu.Unlock()
		st := s.convert(u, prev)
		s.mu.Lock()
		s.objects[key] = st
		// An object that configures the mesh as before (a Pod's status
		// beat while Pods are not read, an edit of an ignored field)
		// makes no new snapshot and no push.
		changed := !sameState(prev, st)
		s.dirty = s.dirty || changed
		s.mu.Unlock()
		if changed {
			s.signal()
		}
	}
}

func (s *Source) objectDeleted(informer string) func(any) {
	return func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		key := objKey{informer: informer, namespace: u.GetNamespace(), name: u.GetName()}
		s.mu.Lock()
		prev := s.objects[key]
		delete(s.objects, key)
		had := !sameState(prev, nil)
		s.dirty = s.dirty || had
		s.mu.Unlock()
		if had {
			s.signal()
		}
	}
}

// convert decodes and checks one object as a file document is checked
// (filesource's parse), keeping prev's good resources where the new
// version is rejected.
func (s *Source) convert(u *unstructured.Unstructured, prev *objState) *objState {
	st := &objState{rv: u.GetResourceVersion()}
	if !config.InRevision(&config.Resource{Kind: config.Kind(u.GetKind()), Meta: config.Meta{Labels: u.GetLabels()}}, s.opts.Revision) {
		// Another revision's object: not this control plane's to read,
		// report or keep (its previous version, if it was ours, goes).
		return st
	}
	js, err := json.Marshal(u.Object)
	if err != nil {
		st.errs = config.Errors{{Source: config.Source{File: SourceName},
			Err: fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)}}
		if prev != nil {
			st.good = prev.good
		}
		return st
	}
	res := config.Decode(js, config.DecodeOptions{File: SourceName})
	rejected := len(res.Errors) > 0
	for _, e := range res.Errors {
		e.Source = config.Source{File: SourceName}
		st.errs = append(st.errs, e)
	}
	for _, n := range res.NotEnforced {
		n.File = SourceName
		st.notEnforced = append(st.notEnforced, n)
	}
	for _, r := range res.Resources {
		r.Source = config.Source{File: SourceName}
		for _, w := range config.Warnings(r) {
			s.opts.Warnf("config: WARNING %s", w)
		}
		problems := append(config.Validate(r), config.Unsupported(r)...)
		if len(problems) > 0 {
			st.errs = append(st.errs, problems...)
			rejected = true
			continue
		}
		st.good = append(st.good, r)
	}
	if rejected && prev != nil && len(st.good) == 0 {
		st.good = prev.good
		if len(prev.good) > 0 {
			s.opts.Logf("config: kubernetes: %s %s/%s rejected; its previous version stays in force", u.GetKind(), u.GetNamespace(), u.GetName())
		}
	}
	if len(st.errs) > 0 {
		s.opts.Logf("config: kubernetes: %s %s/%s: problems:\n%v", u.GetKind(), u.GetNamespace(), u.GetName(), st.errs)
	}
	return st
}

// sameState reports whether two states of an object (nil: absent)
// contribute the same to a snapshot: the same resources by content
// (filesource.SameResource), errors and not-enforced reports.
func sameState(a, b *objState) bool {
	if a == nil {
		a = &objState{}
	}
	if b == nil {
		b = &objState{}
	}
	if len(a.good) != len(b.good) || len(a.errs) != len(b.errs) || len(a.notEnforced) != len(b.notEnforced) {
		return false
	}
	if len(filesource.ChangedResources(a.good, b.good)) > 0 {
		return false
	}
	for i := range a.errs {
		if a.errs[i].Error() != b.errs[i].Error() {
			return false
		}
	}
	for i := range a.notEnforced {
		if a.notEnforced[i] != b.notEnforced[i] {
			return false
		}
	}
	return true
}
