package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice-mesh/sluice/pkg/ca"
)

// ControlPlane says how a proxy reaches its control plane's xDS/CA port,
// as istio-agent reaches istiod: with a token proving which identity it
// may hold (istio-agent sends the pod's service account token) and,
// when TLS is on, verifying the control plane's certificate against the
// mesh roots in a file (istio-agent's ISTIOD root, ./var/run/secrets/istio/root-cert.pem).
type ControlPlane struct {
	Address string
	// TokenFile holds the token sent as `authorization: Bearer`; read on
	// every call, so a replaced token applies at once.
	TokenFile string
	// TLS dials with TLS, verifying the server against RootFile for
	// ServerName.
	TLS bool
	// RootFile is the PEM trust bundle to verify the control plane with
	// (read at every handshake, so a root rotation applies).
	RootFile string
	// ServerName is the name to verify (default: the address's host).
	ServerName string
}

// DialOptions are the gRPC dial options for the control plane.
func (cp ControlPlane) DialOptions() ([]grpc.DialOption, error) {
	opts := []grpc.DialOption{grpc.WithPerRPCCredentials(tokenCreds{file: cp.TokenFile, tls: cp.TLS})}
	if !cp.TLS {
		return append(opts, grpc.WithTransportCredentials(insecure.NewCredentials())), nil
	}
	if cp.RootFile == "" {
		return nil, errors.New("xDS over TLS needs the control plane's root file (--ca-root-file)")
	}
	name := cp.ServerName
	if name == "" {
		host, _, err := net.SplitHostPort(cp.Address)
		if err != nil {
			return nil, fmt.Errorf("control plane address %q: %w", cp.Address, err)
		}
		name = host
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verified in VerifyConnection against the root file as it is at
		// the handshake.
		InsecureSkipVerify: true,
		VerifyConnection:   func(cs tls.ConnectionState) error { return verifyControlPlane(cs, cp.RootFile, name) },
	}
	return append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg))), nil
}

func verifyControlPlane(cs tls.ConnectionState, rootFile, name string) error {
	pemBytes, err := os.ReadFile(rootFile)
	if err != nil {
		return fmt.Errorf("control plane root file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		return fmt.Errorf("control plane root file %s holds no PEM certificate", rootFile)
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("control plane sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name})
	if err != nil {
		return fmt.Errorf("control plane certificate does not verify against %s for %q: %w", rootFile, name, err)
	}
	return nil
}

// tokenCreds sends the token file's content as a bearer token.
type tokenCreds struct {
	file string
	tls  bool
}

func (t tokenCreds) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if t.file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(t.file)
	if err != nil {
		return nil, fmt.Errorf("token file: %w; %s", err, ca.TokenFix)
	}
	return map[string]string{"authorization": "Bearer " + strings.TrimSpace(string(b))}, nil
}

// RequireTransportSecurity is false: on a loopback address plaintext is
// allowed (see docs/security.md); the CLI turns TLS on for other addresses.
func (t tokenCreds) RequireTransportSecurity() bool { return false }
