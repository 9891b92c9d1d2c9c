package ca

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
)

// Server answers Istio's certificate API (IstioCertificateService, the one
// istio-agent calls) with certificates from a CA.
//
// Local mode trusts its callers: a process that can reach the control
// plane's loopback address may ask for any identity in the trust domain,
// as it could read the workloads' files anyway. Kubernetes mode is where
// callers prove who they are (service account tokens).
type Server struct {
	securityv1alpha1.UnimplementedIstioCertificateServiceServer
	CA *CA
}

// Register adds the certificate service to a gRPC server.
func (s *Server) Register(g *grpc.Server) {
	securityv1alpha1.RegisterIstioCertificateServiceServer(g, s)
}

// CreateCertificate signs the request's CSR.
func (s *Server) CreateCertificate(ctx context.Context, req *securityv1alpha1.IstioCertificateRequest) (*securityv1alpha1.IstioCertificateResponse, error) {
	chain, err := s.CA.Sign([]byte(req.Csr), time.Duration(req.ValidityDuration)*time.Second)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &securityv1alpha1.IstioCertificateResponse{CertChain: chain}, nil
}
