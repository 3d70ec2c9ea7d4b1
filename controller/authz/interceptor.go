package authz

import (
	"context"
	"errors"
	"strings"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ErrInvalidToken is what a Verifier returns for a token that does not
// exist, does not match, has expired or was revoked. Callers learn only
// that it is not valid.
var ErrInvalidToken = errors.New("invalid, expired or revoked bearer token")

// Verifier turns a bearer token into its principal.
type Verifier interface {
	Verify(ctx context.Context, token string) (Principal, error)
}

// CertInfo is what the transport knows of the caller's client certificate.
type CertInfo struct {
	// Present: the caller presented a verified client certificate.
	Present bool
	// Admin: that certificate is an admin's (it maps to RoleAdmin).
	Admin bool
	// Subject names it.
	Subject string
}

// Auditor records a finished mutating call.
type Auditor interface {
	RecordCall(ctx context.Context, p Principal, fullMethod string, req, resp proto.Message, err error)
}

// Authorizer enforces Table on AdminService calls.
type Authorizer struct {
	Tokens Verifier
	// Cert inspects the caller's certificate; nil means no client certificates.
	Cert func(ctx context.Context) CertInfo
	// Insecure allows calls without credentials, as an unscoped admin
	// ("insecure@<peer>"). A bearer token, when given, is still verified and used.
	Insecure bool
	Audit    Auditor
	Log      hclog.Logger
}

// Authenticate finds the caller of an AdminService call.
func (a *Authorizer) Authenticate(ctx context.Context) (Principal, error) {
	peerAddr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		peerAddr = p.Addr.String()
	}
	if tok, present, err := bearer(ctx); err != nil {
		return Principal{}, err
	} else if present {
		if a.Tokens == nil {
			return Principal{}, status.Error(codes.Unauthenticated, "bearer tokens are not accepted here")
		}
		p, err := a.Tokens.Verify(ctx, tok)
		if errors.Is(err, ErrInvalidToken) {
			return Principal{}, status.Error(codes.Unauthenticated, ErrInvalidToken.Error())
		}
		if err != nil {
			if a.Log != nil {
				a.Log.Error("verify bearer token", "error", err)
			}
			return Principal{}, status.Error(codes.Unavailable, "cannot verify the bearer token now; retry")
		}
		p.Peer = peerAddr
		return p, nil
	}
	if a.Cert != nil {
		if ci := a.Cert(ctx); ci.Present {
			if ci.Admin {
				return Principal{Kind: KindCertificate, Name: ci.Subject, Role: RoleAdmin, Peer: peerAddr}, nil
			}
			if !a.Insecure {
				return Principal{}, status.Errorf(codes.PermissionDenied,
					"certificate %q is not an admin certificate (--tls-admin-ca); send authorization: Bearer <token>", ci.Subject)
			}
		}
	}
	if a.Insecure {
		return Principal{Kind: KindInsecure, Role: RoleAdmin, Peer: peerAddr}, nil
	}
	return Principal{}, status.Error(codes.Unauthenticated,
		"credentials required: send authorization: Bearer <token> (scanorama-controller token create) or an admin client certificate")
}

// bearer reads the authorization metadata.
func bearer(ctx context.Context) (string, bool, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", false, nil
	}
	if len(vals) > 1 {
		return "", false, status.Error(codes.Unauthenticated, "more than one authorization header")
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(tok) == "" {
		return "", false, status.Error(codes.Unauthenticated, `authorization must be "Bearer <token>"`)
	}
	return strings.TrimSpace(tok), true, nil
}

// authorize authenticates and checks the table; it returns the context the
// handler runs with.
func (a *Authorizer) authorize(ctx context.Context, method string) (context.Context, Principal, Rule, error) {
	p, err := a.Authenticate(ctx)
	if err != nil {
		a.refused(method, p, err)
		return nil, p, Rule{}, err
	}
	rule, ok := RuleFor(method)
	if !ok {
		err := status.Errorf(codes.PermissionDenied, "%s is not in the authorization table; denied", method)
		a.refused(method, p, err)
		return nil, p, rule, err
	}
	if p.Role < rule.Least {
		err := status.Errorf(codes.PermissionDenied, "%s needs role %s; %s has role %s", method, rule.Least, p.Identity(), p.Role)
		a.refused(method, p, err)
		return nil, p, rule, err
	}
	return NewContext(ctx, p), p, rule, nil
}

// refused logs a refused call. Refused calls write nothing to the database.
func (a *Authorizer) refused(method string, p Principal, err error) {
	if a.Log != nil {
		a.Log.Warn("call refused", "method", method, "caller", p.Identity(), "code", status.Code(err).String())
	}
}

// UnaryInterceptor enforces the table on unary AdminService calls and
// audits the mutating ones.
func (a *Authorizer) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if !IsAdminService(info.FullMethod) {
			return next(ctx, req)
		}
		ctx, p, rule, err := a.authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		resp, err := next(ctx, req)
		if rule.Mutates && a.Audit != nil {
			reqMsg, _ := req.(proto.Message)
			respMsg, _ := resp.(proto.Message)
			a.Audit.RecordCall(ctx, p, info.FullMethod, reqMsg, respMsg, err)
		}
		return resp, err
	}
}

// StreamInterceptor enforces the table on streaming AdminService calls
// (all of them read).
func (a *Authorizer) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		if !IsAdminService(info.FullMethod) {
			return next(srv, ss)
		}
		ctx, _, _, err := a.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return next(srv, &stream{ServerStream: ss, ctx: ctx})
	}
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }
