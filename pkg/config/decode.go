package config

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Limits on what one decode accepts; larger input is an error, not a crash.
const (
	MaxFileBytes     = 16 << 20
	MaxDocumentBytes = 4 << 20
	MaxDocuments     = 10000
)

// DecodeOptions say how to read one file.
type DecodeOptions struct {
	// File names the input in errors.
	File string
	// DefaultNamespace applies to documents without metadata.namespace.
	DefaultNamespace string
}

// Result is what a decode produced: the resources it understood, the
// recognised kinds it accepts but does not enforce yet, the documents it
// skipped because sluice has no use for their kind, and the errors found.
type Result struct {
	Resources   []*Resource
	NotEnforced []NotEnforced
	Skipped     []string
	Errors      Errors
}

// istioSpecs maps the Istio kinds sluice reads to a constructor of their spec.
var istioSpecs = map[Kind]func() proto.Message{
	KindVirtualService:  func() proto.Message { return &networking.VirtualService{} },
	KindDestinationRule: func() proto.Message { return &networking.DestinationRule{} },
	KindGateway:         func() proto.Message { return &networking.Gateway{} },
	KindServiceEntry:    func() proto.Message { return &networking.ServiceEntry{} },
	KindWorkloadEntry:   func() proto.Message { return &networking.WorkloadEntry{} },
	KindSidecar:         func() proto.Message { return &networking.Sidecar{} },
}

// istioVersions are the networking.istio.io versions Istio serves.
var istioVersions = map[string]bool{"v1": true, "v1beta1": true, "v1alpha3": true}

type document struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   documentMeta      `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
	Items      []json.RawMessage `json:"items"`
	// Secret payload (kind Secret only).
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data"`
	StringData json.RawMessage `json:"stringData"`
	// raw is the whole document as JSON, for the kinds whose Spec is the
	// whole object (kube.go).
	raw []byte
}

type documentMeta struct {
	CreationTimestamp string            `json:"creationTimestamp"`
	Name              string            `json:"name"`
	Namespace         string            `json:"namespace"`
	Labels            map[string]string `json:"labels"`
	Annotations       map[string]string `json:"annotations"`
}

// Decode reads every YAML document in data. A bad document is reported and
// the rest are still read.
func Decode(data []byte, opts DecodeOptions) Result {
	var res Result
	if opts.DefaultNamespace == "" {
		opts.DefaultNamespace = "default"
	}
	if len(data) > MaxFileBytes {
		res.Errors = append(res.Errors, &Error{Source: Source{File: opts.File},
			Err: fmt.Errorf("file is %d bytes, more than the limit of %d", len(data), MaxFileBytes)})
		return res
	}
	reader := k8syaml.NewYAMLReader(bufio.NewReaderSize(bytes.NewReader(data), 64<<10))
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		src := Source{File: opts.File, Doc: doc}
		if err != nil {
			res.Errors = append(res.Errors, &Error{Source: src, Err: fmt.Errorf("read YAML: %w", err)})
			break
		}
		if doc > MaxDocuments {
			res.Errors = append(res.Errors, &Error{Source: src,
				Err: fmt.Errorf("more than %d documents in one file", MaxDocuments)})
			break
		}
		if len(raw) > MaxDocumentBytes {
			res.Errors = append(res.Errors, &Error{Source: src,
				Err: fmt.Errorf("document is %d bytes, more than the limit of %d", len(raw), MaxDocumentBytes)})
			continue
		}
		decodeDocument(raw, src, opts, &res)
	}
	return res
}

func decodeDocument(raw []byte, src Source, opts DecodeOptions, res *Result) {
	if isBlank(raw) {
		return
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		res.Errors = append(res.Errors, &Error{Source: src, Err: fmt.Errorf("invalid YAML: %w", err)})
		return
	}
	if string(js) == "null" {
		return
	}
	var d document
	if err := json.Unmarshal(js, &d); err != nil {
		res.Errors = append(res.Errors, &Error{Source: src, Err: fmt.Errorf("not a Kubernetes-style object: %w", err)})
		return
	}
	d.raw = js
	if d.Kind == "List" && d.APIVersion == "v1" {
		for _, item := range d.Items {
			decodeDocument(item, src, opts, res)
		}
		return
	}
	r, err := decodeObject(d, src, opts)
	switch {
	case err != nil:
		res.Errors = append(res.Errors, asResourceError(err, src, d, opts))
	case r == nil:
		if reason, ok := notEnforcedReason(d.APIVersion, d.Kind); ok {
			group, _ := splitAPIVersion(d.APIVersion)
			res.NotEnforced = append(res.NotEnforced, NotEnforced{Kind: group + "/" + d.Kind,
				Namespace: namespaceOr(d.Metadata.Namespace, opts.DefaultNamespace), Name: d.Metadata.Name,
				File: src.String(), Reason: reason})
			return
		}
		res.Skipped = append(res.Skipped, fmt.Sprintf("%s: %s %s/%s (kind not used by sluice)",
			src, d.Kind, namespaceOr(d.Metadata.Namespace, opts.DefaultNamespace), d.Metadata.Name))
	default:
		res.Resources = append(res.Resources, r)
	}
}

func decodeObject(d document, src Source, opts DecodeOptions) (*Resource, error) {
	if d.Kind == "" {
		return nil, &Error{Field: "kind", Err: errors.New("missing")}
	}
	if d.APIVersion == "" {
		return nil, &Error{Field: "apiVersion", Err: errors.New("missing")}
	}
	group, version := splitAPIVersion(d.APIVersion)
	r := &Resource{
		Kind:       Kind(d.Kind),
		APIVersion: d.APIVersion,
		Meta: Meta{
			Name:        d.Metadata.Name,
			Namespace:   namespaceOr(d.Metadata.Namespace, opts.DefaultNamespace),
			Labels:      d.Metadata.Labels,
			Annotations: d.Metadata.Annotations,
		},
		Source: src,
	}
	if ts := d.Metadata.CreationTimestamp; ts != "" {
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return nil, &Error{Field: "metadata.creationTimestamp", Err: fmt.Errorf("%q is not an RFC 3339 time", ts)}
		}
		r.Created = t.UnixNano()
	}
	ok, err := decodeSpec(r, d, group, version)
	if err != nil || !ok {
		return nil, err
	}
	if r.Name == "" {
		return nil, &Error{Field: "metadata.name", Err: errors.New("missing")}
	}
	return r, nil
}

// decodeSpec decodes d's spec into r by API group and kind; ok is false
// for kinds sluice has no use for.
func decodeSpec(r *Resource, d document, group, version string) (ok bool, err error) {
	if ok, err := decodeKube(r, d, group, version); ok || err != nil {
		return ok, err
	}
	switch {
	case group == "networking.istio.io":
		newSpec, ok := istioSpecs[r.Kind]
		if !ok {
			return false, nil
		}
		if !istioVersions[version] {
			return false, &Error{Field: "apiVersion", Err: fmt.Errorf("%q is not a version Istio serves for %s (use v1, v1beta1 or v1alpha3)", d.APIVersion, d.Kind)}
		}
		spec := newSpec()
		if err := unmarshalSpec(d.Spec, spec); err != nil {
			return false, err
		}
		r.Spec = spec
	case group == SecurityGroup && securitySpecs[r.Kind] != nil:
		if !securityVersions[version] {
			return false, &Error{Field: "apiVersion", Err: fmt.Errorf("%q is not a version Istio serves for %s (use v1 or v1beta1)", d.APIVersion, d.Kind)}
		}
		spec := securitySpecs[r.Kind]()
		if err := unmarshalSpec(d.Spec, spec); err != nil {
			return false, err
		}
		r.Spec = spec
	case group == TelemetryGroup && r.Kind == KindTelemetry:
		if err := decodeTelemetry(r, d, version); err != nil {
			return false, err
		}
	case group == "" && version == "v1" && r.Kind == KindService:
		var svc corev1.ServiceSpec
		if len(d.Spec) > 0 {
			dec := json.NewDecoder(bytes.NewReader(d.Spec))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&svc); err != nil {
				return false, &Error{Field: "spec", Err: err}
			}
		}
		r.Spec = &svc
	case group == GatewayAPIGroup:
		kind, spec, err := decodeGatewayAPI(d.Kind, version, d.Spec)
		if err != nil || spec == nil {
			return false, err
		}
		r.Kind, r.Spec = kind, spec
		if ClusterScoped(kind) {
			r.Namespace = ""
		}
	case group == "" && version == "v1" && r.Kind == KindSecret:
		sec, err := decodeSecret(d)
		if err != nil {
			return false, err
		}
		r.Spec = sec
	default:
		return false, nil
	}
	return true, nil
}

// decodeSecret reads a Secret's payload. data and stringData are read only
// for Secrets: other kinds (a ConfigMap's data is plain strings) are not
// base64.
func decodeSecret(d document) (*Secret, error) {
	var data map[string][]byte
	var stringData map[string]string
	if len(d.Data) > 0 {
		if err := json.Unmarshal(d.Data, &data); err != nil {
			return nil, &Error{Field: "data", Err: err}
		}
	}
	if len(d.StringData) > 0 {
		if err := json.Unmarshal(d.StringData, &stringData); err != nil {
			return nil, &Error{Field: "stringData", Err: err}
		}
	}
	sec := &Secret{Type: d.Type, Data: map[string][]byte{}}
	for k, v := range data {
		sec.Data[k] = v
	}
	for k, v := range stringData {
		sec.Data[k] = []byte(v)
	}
	return sec, nil
}

func unmarshalSpec(raw json.RawMessage, into proto.Message) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	raw = normalizeDurations(raw, into.ProtoReflect().Descriptor())
	if err := (protojson.UnmarshalOptions{}).Unmarshal(raw, into); err != nil {
		// protojson's message gives a position in JSON the user never
		// wrote; name the field path instead.
		msg := strings.TrimPrefix(err.Error(), "proto:")
		msg = strings.TrimSpace(strings.ReplaceAll(msg, "\u00a0", " "))
		field, text := explainJSONError("spec", raw, msg)
		return &Error{Field: field, Err: errors.New(text)}
	}
	return nil
}

func asResourceError(err error, src Source, d document, opts DecodeOptions) *Error {
	e, ok := err.(*Error)
	if !ok {
		e = &Error{Err: err}
	}
	e.Source = src
	group, _ := splitAPIVersion(d.APIVersion)
	e.Key = Key{Kind: ResourceKind(group, d.Kind), Namespace: namespaceOr(d.Metadata.Namespace, opts.DefaultNamespace), Name: d.Metadata.Name}
	if ClusterScoped(e.Key.Kind) {
		e.Key.Namespace = ""
	}
	return e
}

func splitAPIVersion(v string) (group, version string) {
	if i := strings.LastIndexByte(v, '/'); i >= 0 {
		return v[:i], v[i+1:]
	}
	return "", v
}

func namespaceOr(ns, def string) string {
	if ns == "" {
		return def
	}
	return ns
}

func isBlank(raw []byte) bool {
	for _, line := range bytes.Split(raw, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			return false
		}
	}
	return true
}
