package model

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

func ap(ns, name, created, extra string) string {
	return fmt.Sprintf(`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: %s, namespace: %s, creationTimestamp: "%s"}
spec:
  %s
`, name, ns, created, extra)
}

func apNames(xs []*AuthorizationPolicy) string {
	var out []string
	for _, x := range xs {
		out = append(out, x.Namespace+"/"+x.Name)
	}
	return strings.Join(out, ",")
}

const t1, t2, t3 = "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"

var selectionPolicies = ap("foo", "ns-wide-new", t3, "rules: [{}]") +
	ap("foo", "ns-wide-old", t1, "rules: [{}]") +
	ap("foo", "app-a", t2, "selector: {matchLabels: {app: a}}\n  action: DENY\n  rules: [{}]") +
	ap("foo", "app-b", t1, "selector: {matchLabels: {app: b}}\n  rules: [{}]") +
	ap("bar", "other-ns", t1, "rules: [{}]") +
	ap("istio-system", "mesh-wide", t2, "action: AUDIT\n  rules: [{}]") +
	ap("istio-system", "mesh-app-a", t3, "selector: {matchLabels: {app: a}}\n  rules: [{}]") +
	ap("foo", "to-gateway", t1, "targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: web}]\n  rules: [{}]") +
	ap("foo", "to-other-gateway", t1, "targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: other}]\n  rules: [{}]") +
	ap("bar", "to-gateway-elsewhere", t1, "targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: web}]\n  rules: [{}]")

// TestAuthorizationPolicySelection: Istio's ListAuthorizationPolicies and
// ShouldAttachPolicy: the root namespace's policies (mesh-wide, by
// selector), then the workload namespace's, each oldest first; a sidecar
// ignores targetRef policies; a Gateway API gateway takes those naming its
// Gateway in its namespace, and selector policies.
func TestAuthorizationPolicySelection(t *testing.T) {
	pc := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: decode(t, selectionPolicies)})
	got := pc.AuthorizationPoliciesFor(PolicyMatcher{Namespace: "foo", Labels: map[string]string{"app": "a"}})
	if a := apNames(got.Allow); a != "istio-system/mesh-app-a,foo/ns-wide-old,foo/ns-wide-new" {
		t.Errorf("sidecar app=a ALLOW: %s", a)
	}
	if d, au := apNames(got.Deny), apNames(got.Audit); d != "foo/app-a" || au != "istio-system/mesh-wide" {
		t.Errorf("sidecar app=a DENY %s AUDIT %s", d, au)
	}
	other := pc.AuthorizationPoliciesFor(PolicyMatcher{Namespace: "baz", Labels: map[string]string{"app": "a"}})
	if a := apNames(other.Allow); a != "istio-system/mesh-app-a" || len(other.Deny) != 0 {
		t.Errorf("sidecar in a namespace without policies: ALLOW %s DENY %v", a, other.Deny)
	}
	gw := pc.AuthorizationPoliciesFor(PolicyMatcher{Namespace: "foo", Labels: map[string]string{"gateway.networking.k8s.io/gateway-name": "web"}})
	if a := apNames(gw.Allow); a != "foo/ns-wide-old,foo/to-gateway,foo/ns-wide-new" {
		t.Errorf("Gateway API gateway ALLOW: %s", a)
	}

	custom := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{RootNamespace: "mesh-root"},
		Resources: decode(t, selectionPolicies+ap("mesh-root", "root", t1, "rules: [{}]"))})
	if a := apNames(custom.AuthorizationPoliciesFor(PolicyMatcher{Namespace: "baz"}).Allow); a != "mesh-root/root" {
		t.Errorf("MeshConfig rootNamespace mesh-root: ALLOW %s", a)
	}
}

// TestRequestAuthenticationSelection: the workload namespace's first,
// then the root namespace's (GetJwtPoliciesForWorkload).
func TestRequestAuthenticationSelection(t *testing.T) {
	ra := func(ns, name, extra string) string {
		return fmt.Sprintf("---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: %s, namespace: %s}\nspec:\n  %s\n  jwtRules: [{issuer: %s, jwks: '{\"keys\":[]}'}]\n", name, ns, extra, name)
	}
	pc := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: decode(t,
		ra("istio-system", "mesh", "selector: {matchLabels: {app: a}}")+ra("foo", "local", "selector: {}")+
			ra("foo", "app-b", "selector: {matchLabels: {app: b}}")+ra("bar", "elsewhere", "selector: {}"))})
	var got []string
	for _, r := range pc.RequestAuthenticationsFor(PolicyMatcher{Namespace: "foo", Labels: map[string]string{"app": "a"}}) {
		got = append(got, r.Namespace+"/"+r.Name)
	}
	if strings.Join(got, ",") != "foo/local,istio-system/mesh" {
		t.Errorf("RequestAuthentications %v", got)
	}
}

type failingJwks struct{ calls int }

func (f *failingJwks) Jwks(issuer, uri string, _ time.Duration) (string, error) {
	f.calls++
	return "", errors.New("connection refused")
}

// TestLocalJwks: inline jwks is used as is; a jwksUri is resolved once
// per push through the JwksSource; a failure inlines Istio's public-only
// JWKS (fail closed) with the error.
func TestLocalJwks(t *testing.T) {
	doc := `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - {issuer: a, jwksUri: "https://a.example/keys"}
  - {issuer: a, jwksUri: "https://a.example/keys", audiences: [x]}
  - {issuer: b, jwks: '{"keys":[]}'}
`
	src := &failingJwks{}
	pc := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: decode(t, doc), Jwks: src})
	if src.calls != 1 {
		t.Errorf("%d fetches for one issuer and jwksUri, want 1", src.calls)
	}
	keys, err := pc.LocalJwks(&securityv1beta1.JWTRule{Issuer: "a", JwksUri: "https://a.example/keys"})
	if keys != PublicOnlyJwks || err == nil {
		t.Errorf("failed fetch: %q, %v", keys, err)
	}
	if keys, err := pc.LocalJwks(&securityv1beta1.JWTRule{Issuer: "b", Jwks: `{"keys":[]}`}); keys != `{"keys":[]}` || err != nil {
		t.Errorf("inline: %q, %v", keys, err)
	}
	noSource := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: decode(t, doc)})
	if keys, err := noSource.LocalJwks(&securityv1beta1.JWTRule{Issuer: "a", JwksUri: "https://a.example/keys"}); keys != PublicOnlyJwks || err == nil {
		t.Errorf("no resolver: %q, %v", keys, err)
	}
}
