package ca

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Istio's certificate API has no way to tell a workload that the roots
// changed: istio-agent learns a new root at its next renewal. Root
// rotation here must reach every proxy before any presents a certificate
// from the new root, so the control plane also serves a small stream,
// sluice.ca.v1.TrustBundle/Watch, sending the trust bundle and the
// signer's fingerprint at once and again on every change. A proxy trusts
// the new bundle on receipt and renews (after a short jitter) when its
// certificate's issuer is not the signer.

// BundleUpdate is one message of the watch.
type BundleUpdate struct {
	// TrustBundle is every active root, PEM.
	TrustBundle []byte
	// SignerSHA256 is the hex SHA-256 of the signing certificate's DER.
	SignerSHA256 string
	Version      string
}

const bundleWatchMethod = "/sluice.ca.v1.TrustBundle/Watch"

var bundleServiceDesc = grpc.ServiceDesc{
	ServiceName: "sluice.ca.v1.TrustBundle",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Watch",
		ServerStreams: true,
		Handler:       func(srv any, stream grpc.ServerStream) error { return srv.(*BundleService).watch(stream) },
	}},
}

// BundleService serves the trust bundle watch.
type BundleService struct {
	CA   *CA
	Auth *Authenticator

	mu      sync.Mutex
	changed chan struct{}
}

// Register adds the watch to a gRPC server.
func (s *BundleService) Register(g *grpc.Server) { g.RegisterService(&bundleServiceDesc, s) }

// Publish wakes every watch to send the CA's current bundle.
func (s *BundleService) Publish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
	}
	s.changed = make(chan struct{})
}

func (s *BundleService) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

func (s *BundleService) watch(stream grpc.ServerStream) error {
	if _, err := s.Auth.Authenticate(stream.Context()); err != nil {
		return err
	}
	if err := stream.RecvMsg(&emptypb.Empty{}); err != nil {
		return err
	}
	sent := ""
	for {
		ch := s.wait()
		if v := s.CA.Version(); v != sent {
			msg, err := structpb.NewStruct(map[string]any{
				"trust_bundle": string(s.CA.RootPEM()), "signer_sha256": s.CA.SignerFingerprint(), "version": v})
			if err != nil {
				return err
			}
			if err := stream.SendMsg(msg); err != nil {
				return err
			}
			sent = v
		}
		select {
		case <-ch:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// WatchBundle receives the trust bundle from the control plane on conn,
// calling update for each message until the stream ends.
func WatchBundle(ctx context.Context, conn grpc.ClientConnInterface, update func(BundleUpdate)) error {
	stream, err := conn.NewStream(ctx, &bundleServiceDesc.Streams[0], bundleWatchMethod)
	if err != nil {
		return fmt.Errorf("trust bundle watch: %w", err)
	}
	if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
		return fmt.Errorf("trust bundle watch: %w", err)
	}
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("trust bundle watch: %w", err)
	}
	for {
		msg := &structpb.Struct{}
		if err := stream.RecvMsg(msg); err != nil {
			return fmt.Errorf("trust bundle watch: %w", err)
		}
		f := msg.GetFields()
		update(BundleUpdate{TrustBundle: []byte(f["trust_bundle"].GetStringValue()),
			SignerSHA256: f["signer_sha256"].GetStringValue(), Version: f["version"].GetStringValue()})
	}
}
