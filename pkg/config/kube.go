package config

import (
	"encoding/json"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Kubernetes kinds the registry reads as Istio's kube registry does
// (pilot/pkg/serviceregistry/kube/controller): a Service's endpoints come
// from its EndpointSlices, their labels and identity from the Pods the
// slices name, their locality from those Pods' Nodes. Spec holds the
// whole object (status included: a Pod's phase, for one).
const (
	KindPod           Kind = "Pod"
	KindEndpointSlice Kind = "EndpointSlice"
	KindNode          Kind = "Node"
)

// Labels the registry reads on these kinds.
const (
	// AnnotationExportTo on a Service is its exportTo list
	// (annotation.NetworkingExportTo).
	AnnotationExportTo = "networking.istio.io/exportTo"
	// LabelServiceName names an EndpointSlice's Service
	// (discoveryv1.LabelServiceName, Istio's getServiceNamespacedName).
	LabelServiceName = discoveryv1.LabelServiceName
	LabelRegion      = corev1.LabelTopologyRegion
	LabelZone        = corev1.LabelTopologyZone
	// LabelSubzone is Istio's (pilot/pkg/model label.TopologySubzone).
	LabelSubzone = "topology.istio.io/subzone"
)

// DecodeObject decodes one object, JSON or YAML, exactly as one document
// of a file (CONTRACT11): the kube source converts an informer object by
// marshalling it to JSON and calling this, so a cluster and a folder
// share decoding and errors. The error, when there is one, is an Errors
// naming src, the object and the field. (nil, nil) is a kind sluice does
// not read, or reads but does not enforce: DecodeObjectResult says which
// (Result.Skipped, Result.NotEnforced) for reporting. Validate and
// Unsupported still apply to the resource, as for a file's.
func DecodeObject(obj []byte, src Source, opts DecodeOptions) (*Resource, error) {
	res := DecodeObjectResult(obj, src, opts)
	if len(res.Errors) > 0 {
		return nil, res.Errors
	}
	if len(res.Resources) != 1 {
		if len(res.Resources) > 1 {
			return nil, Errors{{Source: src, Err: fmt.Errorf("%d objects where one was expected", len(res.Resources))}}
		}
		return nil, nil
	}
	return res.Resources[0], nil
}

// DecodeObjectResult is DecodeObject with the whole Result (a v1 List
// gives several resources).
func DecodeObjectResult(obj []byte, src Source, opts DecodeOptions) Result {
	var res Result
	if opts.DefaultNamespace == "" {
		opts.DefaultNamespace = "default"
	}
	if len(obj) > MaxDocumentBytes {
		res.Errors = append(res.Errors, &Error{Source: src,
			Err: fmt.Errorf("object is %d bytes, more than the limit of %d", len(obj), MaxDocumentBytes)})
		return res
	}
	decodeDocument(obj, src, opts, &res)
	return res
}

// decodeKube decodes the whole object of a Pod, Node, Namespace or EndpointSlice
// (strictly: an unknown field is an error naming it); ok is false for
// other kinds.
func decodeKube(r *Resource, d document, group, version string) (ok bool, err error) {
	var obj any
	switch {
	case group == "" && version == "v1" && r.Kind == KindPod:
		obj = &corev1.Pod{}
	case group == "" && version == "v1" && r.Kind == KindNode:
		obj = &corev1.Node{}
		r.Namespace = ""
	case group == "" && version == "v1" && r.Kind == KindNamespace:
		// Its labels: Gateway API allowedRoutes selectors match them.
		obj = &corev1.Namespace{}
		r.Namespace = ""
	case group == "discovery.k8s.io" && r.Kind == KindEndpointSlice:
		if version != "v1" {
			return false, &Error{Field: "apiVersion", Err: fmt.Errorf("%q: sluice reads EndpointSlices of discovery.k8s.io/v1", d.APIVersion)}
		}
		obj = &discoveryv1.EndpointSlice{}
	default:
		return false, nil
	}
	if err := strictJSON("", json.RawMessage(d.raw), obj); err != nil {
		if e, ok := err.(*Error); ok && len(e.Field) > 0 && e.Field[0] == '.' {
			e.Field = e.Field[1:]
		}
		return false, err
	}
	r.Spec = obj
	return true, nil
}

// endpointSlice validates a slice as Istio can use it.
func (v *validator) endpointSlice(s *discoveryv1.EndpointSlice) {
	if v.r.Labels[LabelServiceName] == "" {
		v.errorf("metadata.labels", "missing label %s: sluice reads the EndpointSlices of Services only, as Istio does", LabelServiceName)
	}
	var family func(netip.Addr) bool
	switch s.AddressType {
	case discoveryv1.AddressTypeIPv4:
		family = netip.Addr.Is4
	case discoveryv1.AddressTypeIPv6:
		family = netip.Addr.Is6
	case discoveryv1.AddressTypeFQDN:
		return // a Rejected row of the support table (support_kube.go)
	default:
		v.errorf("addressType", "%q: use IPv4 or IPv6", s.AddressType)
		return
	}
	for i, e := range s.Endpoints {
		p := idx("endpoints", i)
		if len(e.Addresses) == 0 {
			v.errorf(p+".addresses", "required: at least one address")
		}
		for j, a := range e.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil || !family(ip) || ip.Zone() != "" {
				v.errorf(idx(p+".addresses", j), "%q is not an %s address", a, s.AddressType)
			}
		}
		if ref := e.TargetRef; ref != nil && ref.Kind == string(KindPod) && ref.Namespace != "" && ref.Namespace != v.r.Namespace {
			v.errorf(p+".targetRef.namespace", "%q: a slice's Pods are in its own namespace %q", ref.Namespace, v.r.Namespace)
		}
	}
	names := map[string]bool{}
	for i, port := range s.Ports {
		p := idx("ports", i)
		name := ""
		if port.Name != nil {
			name = *port.Name
		}
		if names[name] {
			v.errorf(p+".name", "%q repeats an earlier port's name", name)
		}
		names[name] = true
		if port.Port != nil && (*port.Port < 1 || *port.Port > 65535) {
			v.errorf(p+".port", "%d is not a port number (1-65535)", *port.Port)
		}
	}
}

// pod validates the Pod fields the registry reads.
func (v *validator) pod(p *corev1.Pod) {
	for i, c := range p.Spec.Containers {
		for j, port := range c.Ports {
			if port.ContainerPort < 1 || port.ContainerPort > 65535 {
				v.errorf(fmt.Sprintf("spec.containers[%d].ports[%d].containerPort", i, j), "%d is not a port number (1-65535)", port.ContainerPort)
			}
		}
	}
}
