// Package analysisstatus writes config analysis messages to the
// status.validationMessages of the Istio objects they are about, as
// istiod's in-cluster analysis does (pkg/config/analysis/incluster with
// pilot/pkg/status: IstioGenerationProvider.SetValidationMessages): each
// message as istio.io/api's AnalysisMessageBase (type code, level,
// documentation URL), the list replaced whole (analysis is the only writer
// of it), and emptied on the objects whose messages went.
package analysisstatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	analysisv1alpha1 "istio.io/api/analysis/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// DocsURL is where Istio's messages are documented
// (pkg/url ConfigAnalysis; istiod names its own minor version, sluice
// the latest docs, as `sluice analyze` does).
const DocsURL = "https://istio.io/latest/docs/reference/config/analysis"

// Ref names one object.
type Ref struct {
	Group, Kind, Namespace, Name string
}

func (r Ref) String() string { return r.Kind + "." + r.Group + " " + r.Namespace + "/" + r.Name }

// Message is one analysis message on an object.
type Message struct {
	Code  string // IST0101
	Level string // Error, Warning, Info
}

// Base is Istio's Message.AnalysisMessageBase: the code, the level in
// upper case, and the documentation URL.
func (m Message) Base() *analysisv1alpha1.AnalysisMessageBase {
	return &analysisv1alpha1.AnalysisMessageBase{
		Type:             &analysisv1alpha1.AnalysisMessageBase_Type{Code: m.Code},
		Level:            analysisv1alpha1.AnalysisMessageBase_Level(analysisv1alpha1.AnalysisMessageBase_Level_value[strings.ToUpper(m.Level)]),
		DocumentationUrl: DocsURL + "/" + strings.ToLower(m.Code) + "/",
	}
}

// Writer writes through a dynamic client; Mapper finds each kind's served
// version.
type Writer struct {
	Client dynamic.Interface
	Mapper meta.RESTMapper
	// written are the objects whose validationMessages this writer last
	// left non-empty: cleared when their messages go.
	written map[Ref]bool
}

// Write makes the validationMessages of each object in msgs, and of each
// object written before that now has none, what msgs says. The first
// Write also clears those of every object in all without messages (what
// an earlier writer, another replica's, may have left). It goes on past
// an object's error; an object that is gone is skipped.
func (w *Writer) Write(ctx context.Context, msgs map[Ref][]Message, all []Ref) (updated int, err error) {
	if r, ok := w.Mapper.(interface{ Reset() }); ok {
		r.Reset()
	}
	if w.written == nil {
		w.written = map[Ref]bool{}
		for _, r := range all {
			w.written[r] = true
		}
	}
	refs := make([]Ref, 0, len(msgs)+len(w.written))
	for r := range msgs {
		refs = append(refs, r)
	}
	for r := range w.written {
		if _, ok := msgs[r]; !ok {
			refs = append(refs, r)
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].String() < refs[j].String() })
	next := map[Ref]bool{}
	var errs []error
	for _, r := range refs {
		changed, err := w.write(ctx, r, msgs[r])
		switch {
		case err != nil:
			errs = append(errs, err)
			if len(msgs[r]) == 0 {
				next[r] = true // clear it next time
			}
		case changed:
			updated++
		}
		if len(msgs[r]) > 0 {
			next[r] = true
		}
	}
	w.written = next
	return updated, errors.Join(errs...)
}

// write sets one object's status.validationMessages; whether it changed.
func (w *Writer) write(ctx context.Context, r Ref, msgs []Message) (bool, error) {
	m, err := w.Mapper.RESTMapping(schema.GroupKind{Group: r.Group, Kind: r.Kind})
	if err != nil {
		if meta.IsNoMatchError(err) {
			return false, nil
		}
		return false, fmt.Errorf("%s: %w", r, err)
	}
	ri := w.Client.Resource(m.Resource).Namespace(r.Namespace)
	obj, err := ri.Get(ctx, r.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", r, err)
	}
	list, err := unstructuredMessages(msgs)
	if err != nil {
		return false, fmt.Errorf("%s: %w", r, err)
	}
	before, _, _ := unstructured.NestedFieldCopy(obj.Object, "status", "validationMessages")
	if len(list) == 0 {
		if before == nil {
			return false, nil
		}
		unstructured.RemoveNestedField(obj.Object, "status", "validationMessages")
	} else {
		if reflect.DeepEqual(before, any(list)) {
			return false, nil
		}
		if err := unstructured.SetNestedSlice(obj.Object, list, "status", "validationMessages"); err != nil {
			return false, fmt.Errorf("%s: %w", r, err)
		}
	}
	if _, err := ri.UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return false, fmt.Errorf("%s: update status: %w", r, err)
	}
	return true, nil
}

// unstructuredMessages is msgs as the API server stores them: each
// AnalysisMessageBase in protobuf's JSON (as istiod writes it), in order,
// one per message (two of one code stay two, as istiod's).
func unstructuredMessages(msgs []Message) ([]any, error) {
	out := []any{}
	for _, m := range msgs {
		js, err := protojson.Marshal(m.Base())
		if err != nil {
			return nil, err
		}
		var v map[string]any
		if err := json.Unmarshal(js, &v); err != nil {
			return nil, err
		}
		out = append(out, runtime.DeepCopyJSONValue(v))
	}
	return out, nil
}
