package config

import (
	"google.golang.org/protobuf/proto"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// SecurityGroup is the API group of Istio's security kinds.
const SecurityGroup = "security.istio.io"

// Istio security kinds sluice enforces. v1 and v1beta1 share the
// istio.io/api security/v1beta1 Go types (security/v1 aliases them).
const (
	KindAuthorizationPolicy   Kind = "AuthorizationPolicy"
	KindRequestAuthentication Kind = "RequestAuthentication"
)

// securitySpecs maps the security.istio.io kinds sluice reads to a
// constructor of their spec (every served version, v1 and v1beta1, shares
// the v1beta1 Go type, as in Istio); the group's other kinds fall through
// to the not-enforced table.
var securitySpecs = map[Kind]func() proto.Message{
	KindAuthorizationPolicy:   func() proto.Message { return &securityv1beta1.AuthorizationPolicy{} },
	KindRequestAuthentication: func() proto.Message { return &securityv1beta1.RequestAuthentication{} },
	KindPeerAuthentication:    func() proto.Message { return &securityv1beta1.PeerAuthentication{} },
}

// securityVersions are the security.istio.io versions Istio serves.
var securityVersions = map[string]bool{"v1": true, "v1beta1": true}

// AnnotationDryRun is Istio's istio.io/dry-run annotation: an
// AuthorizationPolicy carrying "true" is evaluated (shadow rules) but not
// enforced.
const AnnotationDryRun = annotationDryRun
