package ca

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TokenFix is what an error about a missing or bad token tells the user.
const TokenFix = "pass --token-file with the bootstrap token that `sluice control` writes (<state dir>/bootstrap-token) " +
	"or a token from `sluice control token --namespace NS --service-account SA`"

// Authenticator checks the token every call to the control plane's gRPC
// port carries as `authorization: Bearer <token>` metadata, as istiod
// reads the caller's JWT (security/pkg/server/ca/authenticate).
type Authenticator struct {
	Tokens *Tokens
	// Kube, when set, also accepts Kubernetes service account tokens,
	// checked with TokenReview (kubetoken.go): a token that is neither
	// the bootstrap token nor a bound token is reviewed by the API server.
	Kube *KubeTokens
}

type callerKey struct{}

// Authenticate reads and checks the call's token: codes.Unauthenticated,
// naming the fix, when it is missing or not valid.
func (a *Authenticator) Authenticate(ctx context.Context) (Caller, error) {
	if c, ok := ctx.Value(callerKey{}).(Caller); ok {
		return c, nil
	}
	if a == nil || (a.Tokens == nil && a.Kube == nil) {
		return Caller{}, status.Error(codes.Unauthenticated, "the control plane has no token authority; it accepts no caller")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return Caller{}, status.Error(codes.Unauthenticated, "no token: the control plane requires proof of identity; "+TokenFix)
	}
	token, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		return Caller{}, status.Error(codes.Unauthenticated, "authorization metadata is not \"Bearer <token>\"; "+TokenFix)
	}
	token = strings.TrimSpace(token)
	var err error
	if a.Tokens != nil {
		var c Caller
		if c, err = a.Tokens.Check(token); err == nil {
			return c, nil
		}
	}
	if a.Kube != nil {
		c, kerr := a.Kube.Review(ctx, token)
		if kerr == nil {
			return c, nil
		}
		err = errors.Join(err, kerr)
	}
	return Caller{}, status.Errorf(codes.Unauthenticated, "token refused: %v; %s", err, TokenFix)
}

// MessageCheck judges a message a caller sends on a stream (the xDS node
// it announces); an error ends the stream.
type MessageCheck func(c Caller, msg any) error

// StreamInterceptor refuses streams without a valid token and runs check
// on every message received.
func (a *Authenticator) StreamInterceptor(check MessageCheck) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		c, err := a.Authenticate(ss.Context())
		if err != nil {
			return err
		}
		cs := &checkedStream{ServerStream: ss, caller: c, check: check,
			ctx: context.WithValue(ss.Context(), callerKey{}, c)}
		err = handler(srv, cs)
		// The xDS server ends the stream on a receive error without
		// returning it; the refusal is what the caller must see.
		if denied := cs.denied.Load(); denied != nil {
			return *denied
		}
		return err
	}
}

// UnaryInterceptor refuses calls without a valid token; handlers read the
// caller with Authenticate.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		c, err := a.Authenticate(ctx)
		if err != nil {
			return nil, err
		}
		return handler(context.WithValue(ctx, callerKey{}, c), req)
	}
}

type checkedStream struct {
	grpc.ServerStream
	ctx    context.Context
	caller Caller
	check  MessageCheck
	denied atomic.Pointer[error]
}

func (s *checkedStream) Context() context.Context { return s.ctx }

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.check != nil {
		if err := s.check(s.caller, m); err != nil {
			s.denied.Store(&err)
			return err
		}
	}
	return nil
}
