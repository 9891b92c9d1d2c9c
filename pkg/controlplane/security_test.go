package controlplane

import (
	"context"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
)

// firstCDS opens an ADS stream as a proxy announcing ns/sa and returns the
// first CDS answer or the error ending the stream.
func firstCDS(t *testing.T, cp identity.ControlPlane, ns, sa string) (*discovery.DiscoveryResponse, error) {
	t.Helper()
	dial, err := cp.DialOptions()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(cp.Address, dial...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	node := (&model.Proxy{Type: model.Sidecar, Name: "w-0", Namespace: ns, ServiceAccount: sa, IPs: []string{"127.0.0.1"}}).Node()
	// A refused stream's status comes from Recv, whatever Send said.
	s.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType})
	return s.Recv()
}

// xDS over TLS with the mesh CA's serving certificate, and the same
// token proof the CA asks for: no token, a token bound to another
// service account than the node announces, or a root that does not
// verify the server are all refused; the right proof gets config.
func TestXDSRequiresProofOverTLS(t *testing.T) {
	r := startWith(t, Options{ConfigDir: t.TempDir(), Security: SecurityOptions{XDSTLS: true}})
	root := filepath.Join(r.state, ca.FileRootCert)
	tokenFile := func(tok string) string {
		p := filepath.Join(t.TempDir(), "token")
		os.WriteFile(p, []byte(tok), 0o600)
		return p
	}
	bound, err := ca.MintBoundToken(ca.MintOptions{KeyFile: filepath.Join(r.state, ca.FileTokenKey), Namespace: "shop", ServiceAccount: "reviews"})
	if err != nil {
		t.Fatal(err)
	}
	boot := filepath.Join(r.state, ca.FileBootstrapToken)
	otherRoot := filepath.Join(t.TempDir(), "root.pem")
	other, _ := ca.New(ca.Options{})
	os.WriteFile(otherRoot, other.RootPEM(), 0o644)

	for _, tc := range []struct {
		name   string
		cp     identity.ControlPlane
		ns, sa string
		code   codes.Code
		says   string
	}{
		{"plaintext to the TLS port", identity.ControlPlane{TokenFile: boot}, "shop", "reviews", codes.Unavailable, ""},
		{"no token", identity.ControlPlane{TLS: true, RootFile: root}, "shop", "reviews", codes.Unauthenticated, "--token-file"},
		{"wrong token", identity.ControlPlane{TLS: true, RootFile: root, TokenFile: tokenFile("nope")}, "shop", "reviews", codes.Unauthenticated, "--token-file"},
		{"bound token, another identity", identity.ControlPlane{TLS: true, RootFile: root, TokenFile: tokenFile(bound)}, "shop", "ratings", codes.PermissionDenied, "sluice control token"},
		{"root that does not verify the server", identity.ControlPlane{TLS: true, RootFile: otherRoot, TokenFile: boot}, "shop", "reviews", codes.Unavailable, "does not verify"},
		{"bound token, its identity", identity.ControlPlane{TLS: true, RootFile: root, TokenFile: tokenFile(bound)}, "shop", "reviews", codes.OK, ""},
		{"bootstrap token", identity.ControlPlane{TLS: true, RootFile: root, TokenFile: boot}, "web", "frontend", codes.OK, ""},
		{"istiod's name", identity.ControlPlane{TLS: true, RootFile: root, TokenFile: boot, ServerName: ca.IstiodSAN}, "web", "frontend", codes.OK, ""},
	} {
		tc.cp.Address = r.xds
		resp, err := firstCDS(t, tc.cp, tc.ns, tc.sa)
		st := status.Convert(err)
		if st.Code() != tc.code || !strings.Contains(st.Message(), tc.says) {
			t.Errorf("%s: got %v %q, want %v mentioning %q", tc.name, st.Code(), st.Message(), tc.code, tc.says)
		}
		if tc.code == codes.OK && resp.GetTypeUrl() != resourcev3.ClusterType {
			t.Errorf("%s: no CDS answer", tc.name)
		}
	}
}

// The xDS serving certificate names the host injected pods are told to
// dial (--injection-xds-address), so a revision's pods, which dial
// istiod-<rev>.<namespace>.svc, verify it; another name does not verify.
func TestXDSCertNamesInjectedAddress(t *testing.T) {
	r := startWith(t, Options{ConfigDir: t.TempDir(), Security: SecurityOptions{XDSTLS: true},
		Injection: InjectionOptions{XDSAddress: "istiod-canary.mesh.svc:15012"}})
	root := filepath.Join(r.state, ca.FileRootCert)
	boot := filepath.Join(r.state, ca.FileBootstrapToken)
	for name, want := range map[string]codes.Code{"istiod-canary.mesh.svc": codes.OK, ca.IstiodSAN: codes.OK, "istiod-other.mesh.svc": codes.Unavailable} {
		cp := identity.ControlPlane{Address: r.xds, TLS: true, RootFile: root, TokenFile: boot, ServerName: name}
		_, err := firstCDS(t, cp, "web", "frontend")
		if got := status.Code(err); got != want {
			t.Errorf("server name %s: %v (%v), want %v", name, got, err, want)
		}
	}
}

// A root rotation in the CA folder is picked up by the running control
// plane: the root file proxies verify the xDS port with is rewritten and
// the TLS port keeps answering with a certificate from the new root.
func TestCAFolderWatched(t *testing.T) {
	caDir := t.TempDir()
	r := startWith(t, Options{ConfigDir: t.TempDir(), CADir: caDir, Security: SecurityOptions{XDSTLS: true}})
	root := filepath.Join(r.state, ca.FileRootCert)
	if _, err := ca.Rotate(caDir, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(strings.Join(r.log.lines(""), "\n"))
		}
	})
	waitUntil(t, "root file holds both roots", func() error {
		b, _ := os.ReadFile(root)
		if n := strings.Count(string(b), "BEGIN CERTIFICATE"); n != 2 {
			return status.Errorf(codes.Unknown, "%d roots", n)
		}
		return nil
	})
	// Only the new root verifies the server now.
	roots, signer, err := ca.Roots(caDir)
	if err != nil {
		t.Fatal(err)
	}
	_ = roots
	newOnly := filepath.Join(t.TempDir(), "new.pem")
	os.WriteFile(newOnly, []byte(pemOf(signer.Raw)), 0o644)
	cp := identity.ControlPlane{Address: r.xds, TLS: true, RootFile: newOnly, TokenFile: filepath.Join(r.state, ca.FileBootstrapToken)}
	// The control plane may have loaded the folder while Rotate was
	// writing it (the root file then already holds both roots); the
	// reload that follows moves the serving certificate to the new root.
	waitUntil(t, "serving certificate from the new root", func() error {
		_, err := firstCDS(t, cp, "a", "b")
		return err
	})
	if len(r.log.lines("trust bundle pushed")) == 0 {
		t.Error("the change was not logged")
	}
}

func pemOf(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// MeshConfig's defaultConfig.proxyMetadata.SECRET_TTL (how Istio sets the
// agents' certificate lifetime mesh-wide) is the CA's default; an
// explicit TTL wins; a bad value is an error naming the field.
func TestMeshSecretTTL(t *testing.T) {
	mesh, err := meshconfig.Parse([]byte("defaultConfig:\n  proxyMetadata: {SECRET_TTL: 12h}\n"), "mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSecurity(Options{Mesh: mesh, Logger: slog.New(slog.DiscardHandler)})
	if err != nil || s.ca.WorkloadTTL() != 12*time.Hour {
		t.Fatalf("default from SECRET_TTL: %v %v", s, err)
	}
	s, err = newSecurity(Options{Mesh: mesh, Security: SecurityOptions{WorkloadCertTTL: time.Hour}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil || s.ca.WorkloadTTL() != time.Hour {
		t.Fatalf("explicit TTL: %v", err)
	}
	bad, _ := meshconfig.Parse([]byte("defaultConfig:\n  proxyMetadata: {SECRET_TTL: soon}\n"), "mesh.yaml")
	if _, err := newSecurity(Options{Mesh: bad, Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "proxyMetadata.SECRET_TTL") {
		t.Errorf("bad SECRET_TTL: %v", err)
	}
}
