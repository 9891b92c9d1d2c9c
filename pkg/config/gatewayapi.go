package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1alpha2 "sigs.k8s.io/gateway-api/apis/v1alpha2"
	gwv1alpha3 "sigs.k8s.io/gateway-api/apis/v1alpha3"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	kjson "sigs.k8s.io/json"
)

// GatewayAPIGroup is the Kubernetes Gateway API's API group.
const GatewayAPIGroup = "gateway.networking.k8s.io"

// Kubernetes Gateway API kinds, and Namespace (whose labels
// allowedRoutes selectors read). Gateway API resources decode into the
// sigs.k8s.io/gateway-api v1 spec types whatever version they were
// written in.
//
// The Gateway API Gateway shares its kind name with Istio's Gateway, so it
// is qualified by its group, as kubectl writes it: two resources named
// alike must keep distinct keys.
const (
	KindGatewayClass   Kind = "GatewayClass"
	KindK8sGateway     Kind = "Gateway." + GatewayAPIGroup
	KindHTTPRoute      Kind = "HTTPRoute"
	KindGRPCRoute      Kind = "GRPCRoute"
	KindTCPRoute       Kind = "TCPRoute"
	KindTLSRoute       Kind = "TLSRoute"
	KindReferenceGrant Kind = "ReferenceGrant"
	KindNamespace      Kind = "Namespace"
)

// ClusterScoped reports whether resources of kind k have no namespace.
func ClusterScoped(k Kind) bool { return k == KindGatewayClass || k == KindNamespace || k == KindNode }

// ResourceKind is the Kind sluice keys a document of group and kind by.
func ResourceKind(group, kind string) Kind {
	if group == GatewayAPIGroup && kind == "Gateway" {
		return KindK8sGateway
	}
	return Kind(kind)
}

// gatewayAPIKind describes one Gateway API kind: the versions of it the
// Gateway API serves (standard and experimental channels of v1.6), each
// with a decoder of its spec into the v1 type.
type gatewayAPIKind struct {
	kind     Kind
	versions map[string]func() any
}

var gatewayAPIKinds = map[string]gatewayAPIKind{
	"GatewayClass": {KindGatewayClass, map[string]func() any{
		"v1":      func() any { return &gwv1.GatewayClassSpec{} },
		"v1beta1": func() any { return &gwv1beta1.GatewayClassSpec{} },
	}},
	"Gateway": {KindK8sGateway, map[string]func() any{
		"v1":      func() any { return &gwv1.GatewaySpec{} },
		"v1beta1": func() any { return &gwv1beta1.GatewaySpec{} },
	}},
	"HTTPRoute": {KindHTTPRoute, map[string]func() any{
		"v1":      func() any { return &gwv1.HTTPRouteSpec{} },
		"v1beta1": func() any { return &gwv1beta1.HTTPRouteSpec{} },
	}},
	"GRPCRoute": {KindGRPCRoute, map[string]func() any{
		"v1":       func() any { return &gwv1.GRPCRouteSpec{} },
		"v1alpha2": func() any { return &gwv1.GRPCRouteSpec{} }, // v1alpha2.GRPCRoute is v1's type
	}},
	"TCPRoute": {KindTCPRoute, map[string]func() any{
		"v1":       func() any { return &gwv1.TCPRouteSpec{} },
		"v1alpha2": func() any { return &gwv1alpha2.TCPRouteSpec{} },
	}},
	"TLSRoute": {KindTLSRoute, map[string]func() any{
		"v1":       func() any { return &gwv1.TLSRouteSpec{} },
		"v1alpha2": func() any { return &gwv1alpha2.TLSRouteSpec{} },
		"v1alpha3": func() any { return &gwv1alpha3.TLSRouteSpec{} },
	}},
	"ReferenceGrant": {KindReferenceGrant, map[string]func() any{
		"v1":       func() any { return &gwv1.ReferenceGrantSpec{} },
		"v1beta1":  func() any { return &gwv1beta1.ReferenceGrantSpec{} },
		"v1alpha2": func() any { return &gwv1alpha2.ReferenceGrantSpec{} },
	}},
}

// v1Spec returns a new v1 spec value for kind.
func v1Spec(kind Kind) any {
	switch kind {
	case KindGatewayClass:
		return &gwv1.GatewayClassSpec{}
	case KindK8sGateway:
		return &gwv1.GatewaySpec{}
	case KindHTTPRoute:
		return &gwv1.HTTPRouteSpec{}
	case KindGRPCRoute:
		return &gwv1.GRPCRouteSpec{}
	case KindTCPRoute:
		return &gwv1.TCPRouteSpec{}
	case KindTLSRoute:
		return &gwv1.TLSRouteSpec{}
	case KindReferenceGrant:
		return &gwv1.ReferenceGrantSpec{}
	}
	return nil
}

// decodeGatewayAPI decodes the spec of a gateway.networking.k8s.io
// document strictly (unknown and duplicate fields are errors naming their
// path) into its version's type, then converts it to the v1 type. It
// returns nil, nil for kinds sluice does not read.
func decodeGatewayAPI(kind, version string, raw json.RawMessage) (Kind, any, error) {
	gk, ok := gatewayAPIKinds[kind]
	if !ok {
		return "", nil, nil
	}
	newSpec, ok := gk.versions[version]
	if !ok {
		return "", nil, &Error{Field: "apiVersion", Err: fmt.Errorf("%q is not a version the Gateway API serves for %s (use %s)",
			GatewayAPIGroup+"/"+version, kind, strings.Join(slices.Sorted(maps.Keys(gk.versions)), ", "))}
	}
	spec := newSpec()
	if err := strictJSON("spec", raw, spec); err != nil {
		return "", nil, err
	}
	out := v1Spec(gk.kind)
	if fmt.Sprintf("%T", spec) == fmt.Sprintf("%T", out) {
		return gk.kind, spec, nil
	}
	// Older versions hold the same fields under their own types: convert
	// through JSON, strictly, so a field v1 lacks is an error, not a loss.
	b, err := json.Marshal(spec)
	if err != nil {
		return "", nil, &Error{Field: "spec", Err: err}
	}
	if err := strictJSON("spec", b, out); err != nil {
		return "", nil, &Error{Field: "spec", Err: fmt.Errorf("cannot convert %s %s to v1: %v", version, kind, err)}
	}
	return gk.kind, out, nil
}

// strictJSON decodes raw into v as the Kubernetes API server does: case
// sensitive, unknown and duplicate fields are errors. The error names the
// field path under prefix.
func strictJSON(prefix string, raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	strictErrs, err := kjson.UnmarshalStrict(raw, v)
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &Error{Field: prefix + "." + te.Field, Err: fmt.Errorf("cannot be a JSON %s (want %s)", te.Value, te.Type)}
		}
		return &Error{Field: prefix, Err: err}
	}
	if len(strictErrs) > 0 {
		var fields []string
		for _, e := range strictErrs {
			fields = append(fields, e.Error())
		}
		sort.Strings(fields)
		// The messages read `unknown field "rules[0].foo"`: lift the
		// first path into the error's field.
		first := fields[0]
		if i := strings.IndexByte(first, '"'); i >= 0 {
			if path, err := strconv.Unquote(first[i:]); err == nil {
				what := strings.TrimSpace(first[:i])
				msg := what
				if len(fields) > 1 {
					msg += fmt.Sprintf(" (and %d more: %s)", len(fields)-1, strings.Join(fields[1:], "; "))
				}
				return &Error{Field: prefix + "." + path, Err: errors.New(msg)}
			}
		}
		return &Error{Field: prefix, Err: errors.New(strings.Join(fields, "; "))}
	}
	return nil
}
