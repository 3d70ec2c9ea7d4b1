package server

import (
	"context"
	"crypto/x509"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Roles tells agents from admins by the CA behind their client
// certificate (see TLSFiles.AdminCAFile). Health and reflection stay open to
// any verified client.
type Roles struct {
	agentCAs *caBundle
	adminCAs *caBundle
}

var (
	adminPrefix = "/" + pb.AdminService_ServiceDesc.ServiceName + "/"
	agentPrefix = "/" + pb.AgentService_ServiceDesc.ServiceName + "/"
)

// authorize checks the caller's verified chains against the CAs of the
// method's role.
func (r *Roles) authorize(ctx context.Context, method string) error {
	var want []*x509.Certificate
	role := ""
	switch {
	case strings.HasPrefix(method, adminPrefix):
		// People's calls are decided by controller/authz: an admin
		// certificate or a bearer token (see certInfo).
		return nil
	case strings.HasPrefix(method, agentPrefix):
		want, role = r.agentCAs.get(), "agent (--tls-client-ca)"
	default:
		return nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return status.Error(codes.Unauthenticated, "a client certificate is required")
	}
	for _, chain := range info.State.VerifiedChains {
		for _, c := range chain[1:] { // the issuers; chain[0] is the caller's own
			for _, ca := range want {
				if c.Equal(ca) {
					return nil
				}
			}
		}
	}
	return status.Errorf(codes.PermissionDenied, "%s needs a certificate of the %s CA", method, role)
}

// UnaryInterceptor enforces the roles on unary calls.
func (r *Roles) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if err := r.authorize(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// StreamInterceptor enforces the roles on streaming calls.
func (r *Roles) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		if err := r.authorize(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return next(srv, ss)
	}
}
