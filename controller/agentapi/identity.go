package agentapi

import (
	"context"
	"crypto/x509"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/controller/pki"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Trust turns on enrolled-agent identity: agents enroll with a one-time
// token (Enroll), every other AgentService call needs a client certificate
// this CA issued, and the agent id and site are taken from that certificate
// only.
//
// Without Trust (plaintext, or --tls-client-ca with an external PKI) agents
// name their site in Register and a site's scopes are not applied: today's
// behaviour, for loopback demos and tests and existing deployments.
type Trust struct {
	CA *pki.CA
	// CertTTL is the lifetime of issued agent certificates.
	CertTTL time.Duration
	// RequireApproval keeps new agents pending_approval until ApproveAgent.
	RequireApproval bool
}

// EnableTrust switches the server to enrolled-agent identity (see Trust).
// Call it before serving and install the interceptors.
func (s *Server) EnableTrust(t Trust) {
	if t.CertTTL <= 0 {
		t.CertTTL = DefaultAgentCertTTL
	}
	s.trust = &t
}

// DefaultAgentCertTTL is how long an agent certificate lives; agents renew
// at two thirds of it.
const DefaultAgentCertTTL = 12 * time.Hour

type identityKey struct{}

// IdentityFrom returns the verified agent identity of the call, if the
// agent authenticated with a certificate of the controller CA.
func IdentityFrom(ctx context.Context) (pki.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(pki.Identity)
	return id, ok
}

var (
	agentPrefix  = "/" + pb.AgentService_ServiceDesc.ServiceName + "/"
	enrollMethod = agentPrefix + "Enroll"
)

// authenticate puts the caller's verified identity into ctx. Enroll is the
// one AgentService call that needs no certificate.
func (s *Server) authenticate(ctx context.Context, method string) (context.Context, error) {
	if s.trust == nil || !strings.HasPrefix(method, agentPrefix) || method == enrollMethod {
		return ctx, nil
	}
	id, err := s.peerIdentity(ctx)
	if err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, identityKey{}, id), nil
}

func (s *Server) peerIdentity(ctx context.Context) (pki.Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return pki.Identity{}, status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if ok {
		for _, chain := range info.State.VerifiedChains {
			id, ok := s.chainIdentity(chain)
			if !ok {
				continue
			}
			// TLS checked the certificate at the handshake only; a
			// long-lived connection must not outlive it.
			if exp := chain[0].NotAfter; time.Now().After(exp) {
				return pki.Identity{}, status.Errorf(codes.Unauthenticated, "your client certificate expired at %s; it is renewed at 2/3 of its lifetime, reconnect with the renewed one", exp.UTC().Format(time.RFC3339))
			}
			return id, nil
		}
	}
	return pki.Identity{}, status.Error(codes.Unauthenticated,
		"AgentService needs a client certificate issued by this controller's CA: start the agent with --enroll-token (see scanorama-controller agent enroll)")
}

func (s *Server) chainIdentity(chain []*x509.Certificate) (pki.Identity, bool) {
	if len(chain) < 2 || !chain[len(chain)-1].Equal(s.trust.CA.Cert) {
		return pki.Identity{}, false
	}
	id, err := pki.IdentityOf(chain[0])
	return id, err == nil
}

// UnaryInterceptor authenticates enrolled agents' unary calls.
func (s *Server) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		ctx, err := s.authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// StreamInterceptor authenticates enrolled agents' streaming calls.
func (s *Server) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		ctx, err := s.authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return next(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// checkAgentID refuses a request naming another agent than the certificate.
// An empty agent_id means the caller's own.
func checkAgentID(ctx context.Context, requested string) (string, error) {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return requested, nil
	}
	if requested != "" && requested != id.AgentID.String() {
		return "", status.Errorf(codes.PermissionDenied, "agent_id %q is not the agent of your certificate (%s)", requested, id.AgentID)
	}
	return id.AgentID.String(), nil
}
