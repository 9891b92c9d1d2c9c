package ca_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
	authnv1 "k8s.io/api/authentication/v1"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/pkg/ca"
)

// A pod's projected token (audience istio-ca) gets its service account's
// identity through the API server's TokenReview; a token for another
// audience, the API server's own, a tampered one or a made-up one is
// refused; the bootstrap token keeps working beside it.
func TestKubernetesTokensReviewed(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	c.CreateNamespace(t, "bookinfo", nil)
	tokens, err := ca.LoadOrCreateTokens(ca.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	auth := &ca.Authenticator{Tokens: tokens, Kube: &ca.KubeTokens{Client: c.Client(t)}}
	call := func(token string) (ca.Caller, error) {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
		return auth.Authenticate(ctx)
	}

	good := c.ServiceAccountToken(t, "bookinfo", "productpage", []string{"istio-ca"})
	got, err := call(good)
	if err != nil {
		t.Fatalf("projected token refused: %v", err)
	}
	if got.Any || got.Namespace != "bookinfo" || got.ServiceAccount != "productpage" || !got.Permits("bookinfo", "productpage") || got.Permits("bookinfo", "reviews") {
		t.Fatalf("caller %+v", got)
	}

	refused := map[string]string{
		"another audience":         c.ServiceAccountToken(t, "bookinfo", "productpage", []string{"vault"}),
		"the API server's own":     c.ServiceAccountToken(t, "bookinfo", "productpage", nil),
		"tampered":                 good[:len(good)-4] + strings.Repeat("A", 4),
		"not a token at all":       "hello",
		"a JWT nobody here signed": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Ym9va2luZm86cHJvZHVjdHBhZ2UifQ.c2ln",
	}
	for what, token := range refused {
		if c, err := call(token); err == nil {
			t.Errorf("%s: accepted as %+v", what, c)
		} else if !strings.Contains(err.Error(), "Unauthenticated") {
			t.Errorf("%s: %v, want Unauthenticated", what, err)
		}
	}

	// The bootstrap token still works with Kubernetes tokens on.
	if got, err := call(tokens.Bootstrap()); err != nil || !got.Any {
		t.Fatalf("bootstrap token with TokenReview on: %+v, %v", got, err)
	}
}

// TokenReview answers that are not a service account of the audience.
func TestReviewResultFailsClosed(t *testing.T) {
	sa := func(user string, groups ...string) authnv1.TokenReviewStatus {
		return authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: user, Groups: groups}}
	}
	aud := []string{"istio-ca"}
	cases := map[string]authnv1.TokenReviewStatus{
		"error":               {Authenticated: true, Error: "boom", User: authnv1.UserInfo{Username: "system:serviceaccount:a:b", Groups: []string{"system:serviceaccounts"}}},
		"not authenticated":   {User: authnv1.UserInfo{Username: "system:serviceaccount:a:b", Groups: []string{"system:serviceaccounts"}}},
		"a user":              sa("alice", "system:authenticated"),
		"odd username":        sa("system:serviceaccount:a", "system:serviceaccounts"),
		"extra colon":         sa("system:serviceaccount:a:b:c", "system:serviceaccounts"),
		"not in the SA group": sa("system:serviceaccount:a:b", "system:authenticated"),
		"other audience": func() authnv1.TokenReviewStatus {
			s := sa("system:serviceaccount:a:b", "system:serviceaccounts")
			s.Audiences = []string{"vault"}
			return s
		}(),
	}
	for what, st := range cases {
		if c, err := ca.ReviewResult(st, aud); err == nil {
			t.Errorf("%s: accepted as %+v", what, c)
		}
	}
	ok := sa("system:serviceaccount:a:b", "system:serviceaccounts", "system:authenticated")
	ok.Audiences = aud
	if c, err := ca.ReviewResult(ok, aud); err != nil || c.Namespace != "a" || c.ServiceAccount != "b" {
		t.Fatalf("a service account: %+v, %v", c, err)
	}
}
