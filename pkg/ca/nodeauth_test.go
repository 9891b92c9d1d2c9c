package ca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
)

const nodeTestTD = "cluster.local"

// nodeCA is the CA's gRPC service on loopback with TokenReview and the
// node authorizer on, against a real API server.
type nodeCA struct {
	addr string
}

func serveNodeCA(t *testing.T, c *kubetest.Cluster, nodes bool) *nodeCA {
	t.Helper()
	authority, err := ca.New(ca.Options{TrustDomain: nodeTestTD})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := ca.LoadOrCreateTokens(ca.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := c.Client(t)
	auth := &ca.Authenticator{Tokens: tokens, Kube: &ca.KubeTokens{Client: cs}}
	srv := &ca.Server{CA: authority, Auth: auth, Logger: slog.New(slog.DiscardHandler)}
	if nodes {
		trusted, err := ca.ParseTrustedNodeAccounts(ca.DefaultTrustedNodeAccounts)
		if err != nil {
			t.Fatal(err)
		}
		srv.Nodes = &ca.NodeAuthorizer{Client: cs, Trusted: trusted}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return &nodeCA{addr: lis.Addr().String()}
}

// ask requests a certificate for ns/sa with token over gRPC, naming it
// as ImpersonatedIdentity when impersonate is set.
func (n *nodeCA) ask(t *testing.T, token, ns, sa string, impersonate bool) error {
	t.Helper()
	conn, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id := ca.Identity(nodeTestTD, ns, sa)
	req := &securityv1alpha1.IstioCertificateRequest{Csr: string(csrPEM(t, id))}
	if impersonate {
		req.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{ca.ImpersonatedIdentity: structpb.NewStringValue(id)}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	resp, err := securityv1alpha1.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, req)
	if err != nil {
		return err
	}
	b, _ := pem.Decode([]byte(resp.GetCertChain()[0]))
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id {
		t.Fatalf("certificate for %v, asked for %s", leaf.URIs, id)
	}
	return nil
}

func csrPEM(t *testing.T, id string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(id)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func wantRefused(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: signed", what)
		return
	}
	if s := status.Convert(err); s.Code() != codes.Unauthenticated || s.Message() != "request impersonation authentication failure" {
		t.Errorf("%s: %v, want istiod's Unauthenticated \"request impersonation authentication failure\"", what, err)
	}
}

// A ztunnel's pod-bound token gets the identity of a pod on its own node
// when it asks on its behalf; a pod on another node, a service account
// with no pod there (or only a Failed one), an identity other than the
// CSR's and an untrusted caller are refused with istiod's opaque error.
func TestNodeProxyImpersonation(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	c.CreateNamespace(t, "istio-system", nil)
	c.CreateNamespace(t, "bookinfo", nil)
	n := serveNodeCA(t, c, true)
	ztA := c.PodToken(t, c.RunPod(t, "istio-system", "ztunnel-a", "ztunnel", "node-a", ""), []string{"istio-ca"})
	ztB := c.PodToken(t, c.RunPod(t, "istio-system", "ztunnel-b", "ztunnel", "node-b", ""), []string{"istio-ca"})
	details := c.PodToken(t, c.RunPod(t, "bookinfo", "details-1", "details", "node-a", ""), []string{"istio-ca"})
	c.RunPod(t, "bookinfo", "productpage-1", "productpage", "node-a", corev1.PodRunning)
	c.RunPod(t, "bookinfo", "reviews-1", "reviews", "node-b", "")
	c.RunPod(t, "bookinfo", "ratings-1", "ratings", "node-a", corev1.PodFailed)

	if err := n.ask(t, ztA, "bookinfo", "productpage", true); err != nil {
		t.Fatalf("ztunnel on node-a for productpage on node-a: %v", err)
	}
	if err := n.ask(t, ztB, "bookinfo", "reviews", true); err != nil {
		t.Fatalf("ztunnel on node-b for reviews on node-b: %v", err)
	}
	// Its own identity, with or without the metadata.
	if err := n.ask(t, ztA, "istio-system", "ztunnel", true); err != nil {
		t.Fatalf("ztunnel for itself: %v", err)
	}
	wantRefused(t, "productpage from node-b's ztunnel", n.ask(t, ztB, "bookinfo", "productpage", true))
	wantRefused(t, "reviews from node-a's ztunnel", n.ask(t, ztA, "bookinfo", "reviews", true))
	wantRefused(t, "a service account with only a Failed pod on the node", n.ask(t, ztA, "bookinfo", "ratings", true))
	wantRefused(t, "a service account with no pod", n.ask(t, ztA, "bookinfo", "nobody", true))
	wantRefused(t, "the right service account in another namespace", n.ask(t, ztA, "default", "productpage", true))
	wantRefused(t, "an untrusted account on the same node", n.ask(t, details, "bookinfo", "productpage", true))
	// Without the metadata a ztunnel token is its own identity only.
	if err := n.ask(t, ztA, "bookinfo", "productpage", false); status.Code(err) != codes.PermissionDenied {
		t.Errorf("productpage from ztunnel without ImpersonatedIdentity: %v, want PermissionDenied", err)
	}

	// ImpersonatedIdentity must be the CSR's identity.
	conn, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+ztA)
	_, err = securityv1alpha1.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{
		Csr: string(csrPEM(t, ca.Identity(nodeTestTD, "bookinfo", "reviews"))),
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			ca.ImpersonatedIdentity: structpb.NewStringValue(ca.Identity(nodeTestTD, "bookinfo", "productpage"))}},
	})
	wantRefused(t, "a CSR for another identity than the impersonated one", err)

	// The node proxy's certificate holder sends the metadata (as ztunnel's
	// caclient.rs) and gets productpage's certificate.
	tokenFile := filepath.Join(t.TempDir(), "istio-token")
	if err := os.WriteFile(tokenFile, []byte(ztA), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := identity.New(identity.Options{ControlPlane: identity.ControlPlane{Address: n.addr, TokenFile: tokenFile},
		TrustDomain: nodeTestTD, Namespace: "bookinfo", ServiceAccount: "productpage", Impersonate: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(wctx)
	select {
	case <-w.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("the node proxy's identity for productpage was not issued")
	}
}

// The authorizer's reasons (logged by the CA, not told to the caller).
func TestNodeAuthorizerReasons(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	c.CreateNamespace(t, "istio-system", nil)
	c.CreateNamespace(t, "bookinfo", nil)
	cs := c.Client(t)
	zt := c.RunPod(t, "istio-system", "ztunnel-a", "ztunnel", "node-a", "")
	c.RunPod(t, "bookinfo", "reviews-1", "reviews", "node-b", "")
	na := &ca.NodeAuthorizer{Client: cs, Trusted: []types.NamespacedName{{Namespace: "istio-system", Name: "ztunnel"}}}
	caller := ca.Caller{Namespace: "istio-system", ServiceAccount: "ztunnel", PodName: "ztunnel-a", PodUID: string(zt.UID)}
	ctx := context.Background()
	for what, tc := range map[string]struct {
		caller ca.Caller
		want   string
	}{
		"other node":    {caller, `no instances of "bookinfo/reviews" found on node "node-a"`},
		"untrusted":     {ca.Caller{Namespace: "bookinfo", ServiceAccount: "details", PodName: "x"}, "is not allowed to impersonate"},
		"bootstrap":     {ca.Caller{Any: true}, "is not allowed to impersonate"},
		"not pod-bound": {ca.Caller{Namespace: "istio-system", ServiceAccount: "ztunnel"}, "not bound to a pod"},
		"pod gone":      {ca.Caller{Namespace: "istio-system", ServiceAccount: "ztunnel", PodName: "ztunnel-z"}, "pod istio-system/ztunnel-z not found"},
		"pod recreated": {ca.Caller{Namespace: "istio-system", ServiceAccount: "ztunnel", PodName: "ztunnel-a", PodUID: "old"}, "UID does not match"},
	} {
		err := na.Authorize(ctx, tc.caller, "bookinfo", "reviews")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", what, err, tc.want)
		}
	}
	if err := na.Authorize(ctx, caller, "bookinfo", "reviews"); err == nil {
		t.Fatal("reviews is on node-b")
	}
	c.RunPod(t, "bookinfo", "reviews-2", "reviews", "node-a", "")
	if err := na.Authorize(ctx, caller, "bookinfo", "reviews"); err != nil {
		t.Fatalf("a reviews pod just scheduled to node-a: %v", err)
	}
}

// Local mode: the bootstrap token may ask on anyone's behalf; a bound
// token only for itself, the node authorizer being off without a cluster.
func TestImpersonationLocal(t *testing.T) {
	dir := t.TempDir()
	tokens, err := ca.LoadOrCreateTokens(ca.TokenOptions{BootstrapFile: filepath.Join(dir, ca.FileBootstrapToken)})
	if err != nil {
		t.Fatal(err)
	}
	bound, err := ca.MintBoundToken(ca.MintOptions{KeyFile: filepath.Join(dir, ca.FileTokenKey), Namespace: "istio-system", ServiceAccount: "ztunnel"})
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(ca.Options{TrustDomain: nodeTestTD})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	(&ca.Server{CA: authority, Auth: &ca.Authenticator{Tokens: tokens}, Logger: slog.New(slog.DiscardHandler)}).Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	n := &nodeCA{addr: lis.Addr().String()}
	if err := n.ask(t, tokens.Bootstrap(), "bookinfo", "productpage", true); err != nil {
		t.Fatalf("bootstrap token on productpage's behalf: %v", err)
	}
	wantRefused(t, "a bound token on another's behalf", n.ask(t, bound, "bookinfo", "productpage", true))
	if err := n.ask(t, bound, "istio-system", "ztunnel", true); err != nil {
		t.Fatalf("a bound token for itself, with the metadata: %v", err)
	}
}

// --trusted-node-accounts and CA_TRUSTED_NODE_ACCOUNTS: namespace/name
// entries; a malformed one is an error naming it, not skipped as istiod
// skips it; unset, istio-system/ztunnel; set empty, none.
func TestTrustedNodeAccounts(t *testing.T) {
	got, err := ca.ParseTrustedNodeAccounts([]string{"istio-system/ztunnel", " mesh/node-proxy ", ""})
	if err != nil || len(got) != 2 || got[1] != (types.NamespacedName{Namespace: "mesh", Name: "node-proxy"}) {
		t.Fatalf("%v, %v", got, err)
	}
	for _, bad := range []string{"ztunnel", "/ztunnel", "istio-system/", "a/b/c"} {
		if _, err := ca.ParseTrustedNodeAccounts([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	t.Setenv(ca.EnvTrustedNodeAccounts, "") // restored after the test
	os.Unsetenv(ca.EnvTrustedNodeAccounts)
	if got := ca.TrustedNodeAccountsFromEnv(); len(got) != 1 || got[0] != "istio-system/ztunnel" {
		t.Errorf("unset: %v", got)
	}
	t.Setenv(ca.EnvTrustedNodeAccounts, "")
	if got, err := ca.ParseTrustedNodeAccounts(ca.TrustedNodeAccountsFromEnv()); err != nil || len(got) != 0 {
		t.Errorf("set empty: %v, %v", got, err)
	}
	t.Setenv(ca.EnvTrustedNodeAccounts, "a/b,c/d")
	if got := ca.TrustedNodeAccountsFromEnv(); len(got) != 2 || got[1] != "c/d" {
		t.Errorf("a/b,c/d: %v", got)
	}
}
