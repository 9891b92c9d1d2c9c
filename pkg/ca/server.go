package ca

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
)

// Server answers Istio's certificate API (IstioCertificateService, the one
// istio-agent calls) with certificates from a CA, to callers that prove
// they may hold the identity they ask for (a token: see token.go). As
// istiod, it signs only the identity the caller is authenticated for, or
// one a trusted node proxy asks for on behalf of a pod on its node
// (metadata ImpersonatedIdentity, nodeauth.go).
type Server struct {
	securityv1alpha1.UnimplementedIstioCertificateServiceServer
	CA   *CA
	Auth *Authenticator
	// Metrics count requests and issued certificates (nil: not counted).
	Metrics *Metrics
	// Nodes lets trusted node proxies hold the identities of the pods on
	// their node (nodeauth.go); nil: only the bootstrap token may ask for
	// another identity through ImpersonatedIdentity.
	Nodes *NodeAuthorizer
	// Logger receives the reasons of refused impersonations (nil: slog's
	// default).
	Logger *slog.Logger
}

// Register adds the certificate service to a gRPC server.
func (s *Server) Register(g *grpc.Server) {
	securityv1alpha1.RegisterIstioCertificateServiceServer(g, s)
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// CreateCertificate signs the request's CSR for an authenticated caller.
func (s *Server) CreateCertificate(ctx context.Context, req *securityv1alpha1.IstioCertificateRequest) (*securityv1alpha1.IstioCertificateResponse, error) {
	if s.Metrics != nil {
		s.Metrics.csr.Inc()
	}
	caller, err := s.Auth.Authenticate(ctx)
	if err != nil {
		return nil, err
	}
	ns, sa, err := s.CA.CSRIdentity([]byte(req.Csr))
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if imp := req.GetMetadata().GetFields()[ImpersonatedIdentity].GetStringValue(); imp != "" {
		if err := s.impersonation(ctx, caller, imp, ns, sa); err != nil {
			s.logger().Warn("ca: impersonation refused", "caller", caller.String(), "identity", imp, "err", err)
			return nil, status.Error(codes.Unauthenticated, impersonationRefused)
		}
	} else if !caller.Permits(ns, sa) {
		return nil, status.Errorf(codes.PermissionDenied,
			"%s may not get identity %s: mint one for it with `sluice control token --namespace %s --service-account %s`",
			caller, Identity(s.CA.TrustDomain(), ns, sa), ns, sa)
	}
	chain, err := s.CA.Sign([]byte(req.Csr), time.Duration(req.ValidityDuration)*time.Second)
	if err != nil {
		var ttl *TTLError
		if errors.As(err, &ttl) {
			return nil, status.Errorf(codes.InvalidArgument, "%v: ask for less (sluice proxy --cert-ttl, SECRET_TTL) or raise the control plane's --max-workload-cert-ttl", err)
		}
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if s.Metrics != nil {
		s.Metrics.success.Inc()
	}
	return &securityv1alpha1.IstioCertificateResponse{CertChain: chain}, nil
}
