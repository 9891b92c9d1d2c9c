package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/pkg/ca"
)

// checkNodeProxyCertificates: `sluice control`, run as istiod with the
// installed RBAC and its default --trusted-node-accounts, signs a
// ztunnel's request on behalf of a pod on the ztunnel's node and refuses
// one for a pod on another node.
func checkNodeProxyCertificates(t *testing.T, cluster *kubetest.Cluster, xdsAddr string) {
	t.Helper()
	zt := cluster.PodToken(t, cluster.RunPod(t, "istio-system", "ztunnel-1", "ztunnel", "node-1", ""), []string{"istio-ca"})
	cluster.RunPod(t, "default", "productpage-1", "productpage", "node-1", "")
	cluster.RunPod(t, "default", "reviews-1", "reviews", "node-2", "")
	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ask := func(sa string) error {
		id := ca.Identity("cluster.local", "default", sa)
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(id)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+zt)
		_, err = securityv1alpha1.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{
			Csr:      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
			Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{ca.ImpersonatedIdentity: structpb.NewStringValue(id)}},
		})
		return err
	}
	if err := ask("productpage"); err != nil {
		t.Errorf("ztunnel on node-1 for productpage on node-1: %v", err)
	}
	if err := ask("reviews"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ztunnel on node-1 for reviews on node-2: %v, want Unauthenticated", err)
	}
}
