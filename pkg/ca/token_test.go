package ca

import (
	"context"
	"net"
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
	securityv1alpha1 "istio.io/api/security/v1alpha1"
)

func newTokens(t *testing.T) (*Tokens, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	tok, err := LoadOrCreateTokens(TokenOptions{BootstrapFile: filepath.Join(dir, FileBootstrapToken)})
	if err != nil {
		t.Fatal(err)
	}
	return tok, dir
}

// The bootstrap token and signing key are written 0600 in a 0700 folder
// and kept across restarts.
func TestTokenFiles(t *testing.T) {
	tok, dir := newTokens(t)
	for _, name := range []string{FileBootstrapToken, FileTokenKey} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("state folder mode %v, want 0700", fi.Mode().Perm())
	}
	again, err := LoadOrCreateTokens(TokenOptions{BootstrapFile: filepath.Join(dir, FileBootstrapToken)})
	if err != nil {
		t.Fatal(err)
	}
	if again.Bootstrap() != tok.Bootstrap() || string(again.key) != string(tok.key) {
		t.Error("a restarted control plane must keep its tokens")
	}
}

func TestTokenCheck(t *testing.T) {
	tok, dir := newTokens(t)
	other, _ := newTokens(t)
	mint := func(ns, sa string, ttl time.Duration) string {
		s, err := MintBoundToken(MintOptions{KeyFile: filepath.Join(dir, FileTokenKey), Namespace: ns, ServiceAccount: sa, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	foreign, err := other.mint("shop", "reviews", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	bound := mint("shop", "reviews", time.Hour)
	expired, err := tok.mint("shop", "reviews", time.Now().Add(-2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tok.Check(tok.Bootstrap()); err != nil || !c.Any || !c.Permits("any", "thing") {
		t.Errorf("bootstrap token: %+v %v", c, err)
	}
	c, err := tok.Check(bound)
	if err != nil || c.Any || !c.Permits("shop", "reviews") || c.Permits("shop", "ratings") || c.Permits("web", "reviews") {
		t.Errorf("bound token: %+v %v", c, err)
	}
	for name, bad := range map[string]string{
		"empty":                      "",
		"wrong bootstrap token":      strings.Repeat("x", len(tok.Bootstrap())),
		"bootstrap token of another": other.Bootstrap(),
		"signed by another key":      foreign,
		"expired":                    expired,
		"tampered":                   bound[:len(bound)-2] + "AA",
	} {
		if c, err := tok.Check(bad); err == nil {
			t.Errorf("%s: accepted as %+v", name, c)
		}
	}
	if _, err := MintBoundToken(MintOptions{KeyFile: filepath.Join(dir, FileTokenKey), Namespace: "a:b", ServiceAccount: "c"}); err == nil {
		t.Error("a namespace with ':' must be refused")
	}
}

// The certificate service over real gRPC: a caller without a valid token
// is refused with a clear error naming the fix, a bound token gets its
// own identity only, an over-long TTL is refused naming the flags.
func TestServerRequiresProof(t *testing.T) {
	authority, err := New(Options{MaxWorkloadTTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tok, dir := newTokens(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	(&Server{CA: authority, Auth: &Authenticator{Tokens: tok}}).Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := securityv1alpha1.NewIstioCertificateServiceClient(conn)
	bound, err := MintBoundToken(MintOptions{KeyFile: filepath.Join(dir, FileTokenKey), Namespace: "shop", ServiceAccount: "reviews"})
	if err != nil {
		t.Fatal(err)
	}
	call := func(token, ns, sa string, ttl time.Duration) error {
		ctx := context.Background()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		_, err := client.CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{
			Csr: string(csrFor(t, Identity("cluster.local", ns, sa))), ValidityDuration: int64(ttl.Seconds())})
		return err
	}
	for _, tc := range []struct {
		name, token, ns, sa string
		ttl                 time.Duration
		code                codes.Code
		says                string
	}{
		{"missing token", "", "shop", "reviews", 0, codes.Unauthenticated, "--token-file"},
		{"wrong token", "not-the-token", "shop", "reviews", 0, codes.Unauthenticated, "--token-file"},
		{"token for another identity", bound, "shop", "ratings", 0, codes.PermissionDenied, "sluice control token --namespace shop --service-account ratings"},
		{"TTL over the maximum", bound, "shop", "reviews", 72 * time.Hour, codes.InvalidArgument, "--max-workload-cert-ttl"},
		{"bound token, its identity", bound, "shop", "reviews", time.Hour, codes.OK, ""},
		{"bootstrap token, any identity", tok.Bootstrap(), "web", "frontend", 0, codes.OK, ""},
	} {
		err := call(tc.token, tc.ns, tc.sa, tc.ttl)
		if st := status.Convert(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.says) {
			t.Errorf("%s: got %v %q, want %v mentioning %q", tc.name, st.Code(), st.Message(), tc.code, tc.says)
		}
	}
}
