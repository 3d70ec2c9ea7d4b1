package agentapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/audit"
	"github.com/scanorama/scanorama/controller/pki"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Enroll implements AgentService.Enroll: one use of a token buys one agent
// identity in the token's site, and a certificate for the CSR's key.
func (s *Server) Enroll(ctx context.Context, req *pb.EnrollRequest) (*pb.EnrollResponse, error) {
	if s.trust == nil {
		return nil, status.Error(codes.FailedPrecondition, "this controller has no CA: run scanorama-controller ca init and restart it")
	}
	var bad []*apierr.FieldError
	tok, err := pki.ParseToken(req.GetToken())
	if err != nil {
		bad = append(bad, apierr.Field("token", "%v", err))
	} else if tok.CAFingerprint != s.trust.CA.Fingerprint() {
		bad = append(bad, apierr.Field("token", "made for another controller CA (fingerprint %s…)", tok.CAFingerprint[:16]))
	}
	if n := req.GetName(); n == "" || len(n) > 128 {
		bad = append(bad, apierr.Field("name", "required, at most 128 characters"))
	}
	if len(req.GetCsrDer()) == 0 {
		bad = append(bad, apierr.Field("csr_der", "required"))
	}
	if len(req.GetHostname()) > 255 || len(req.GetVersion()) > 128 {
		bad = append(bad, apierr.Field("hostname", "at most 255 characters (version at most 128)"))
	}
	if len(bad) > 0 {
		return nil, apierr.Invalid(bad...)
	}
	var resp *pb.EnrollResponse
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		siteID, err := q.UseEnrollmentToken(ctx, db.UseEnrollmentTokenParams{ID: tok.ID, SecretHash: tok.SecretHash()})
		if errors.Is(err, pgx.ErrNoRows) {
			return s.tokenRefused(ctx, tok)
		}
		if err != nil {
			return fmt.Errorf("use enrollment token: %w", err)
		}
		site, err := q.GetSiteByID(ctx, siteID)
		if err != nil {
			return fmt.Errorf("read site: %w", err)
		}
		agentState := state.AgentActive
		if s.trust.RequireApproval {
			agentState = state.AgentPendingApproval
		}
		a, err := q.CreateEnrolledAgent(ctx, db.CreateEnrolledAgentParams{
			SiteID: site.ID, Name: req.GetName(), State: string(agentState), Hostname: req.GetHostname(), Version: req.GetVersion(),
		})
		if apierr.IsUniqueViolation(err) {
			return status.Errorf(codes.AlreadyExists, "name: site %q already has an agent named %q; enroll with another --name", site.Name, req.GetName())
		}
		if err != nil {
			return fmt.Errorf("create agent: %w", err)
		}
		id := pki.Identity{AgentID: a.ID, Site: site.Name}
		cert, err := s.trust.CA.IssueAgent(req.GetCsrDer(), id, s.trust.CertTTL)
		if err != nil {
			return apierr.InvalidField("csr_der", "%v", err)
		}
		resp = &pb.EnrollResponse{AgentId: a.ID.String(), Site: site.Name, CertDer: cert.Raw, CaDer: s.trust.CA.Cert.Raw, State: string(agentState)}
		// On record in the same transaction: no agent exists without the
		// audit row that says which token brought it in.
		return audit.Record(ctx, tx, audit.Event{
			Actor: "enrollment-token:" + tok.ID, Role: "agent", Action: "agent.enroll",
			SiteID: uuid.NullUUID{UUID: site.ID, Valid: true}, ObjectIDs: []string{a.ID.String(), tok.ID},
			Peer: peerAddr(ctx), Outcome: codes.OK,
			Message: fmt.Sprintf("agent %q enrolled (%s)", req.GetName(), agentState),
		})
	})
	if err != nil {
		return nil, s.internal("enroll agent", err)
	}
	s.log.Info("agent enrolled", "agent_id", resp.GetAgentId(), "site", resp.GetSite(), "name", req.GetName(),
		"token_id", tok.ID, "state", resp.GetState())
	return resp, nil
}

// tokenRefused says why a token cannot be used, without repeating it.
func (s *Server) tokenRefused(ctx context.Context, tok pki.Token) error {
	t, err := s.q.GetEnrollmentToken(ctx, tok.ID)
	why := "unknown"
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read enrollment token: %w", err)
	case subtle.ConstantTimeCompare(t.SecretHash, tok.SecretHash()) != 1:
	case t.RevokedAt.Valid:
		why = "revoked"
	case t.Expired:
		why = "expired"
	case t.Uses >= t.MaxUses:
		why = "already used"
	}
	s.log.Warn("enrollment refused", "token_id", tok.ID, "reason", why)
	return status.Errorf(codes.PermissionDenied, "enrollment token %s is %s; ask for a new one (scanorama-controller agent enroll)", tok.ID, why)
}

// Renew implements AgentService.Renew: a fresh certificate for the
// caller's identity, for as long as the agent is not revoked.
func (s *Server) Renew(ctx context.Context, req *pb.RenewRequest) (*pb.RenewResponse, error) {
	id, ok := IdentityFrom(ctx)
	if !ok || s.trust == nil {
		return nil, status.Error(codes.Unauthenticated, "Renew needs the client certificate of an enrolled agent")
	}
	if len(req.GetCsrDer()) == 0 {
		return nil, apierr.InvalidField("csr_der", "required")
	}
	if _, err := s.agent(ctx, id.AgentID.String()); err != nil {
		return nil, err
	}
	cert, err := s.trust.CA.IssueAgent(req.GetCsrDer(), id, s.trust.CertTTL)
	if err != nil {
		return nil, apierr.InvalidField("csr_der", "%v", err)
	}
	s.log.Debug("agent certificate renewed", "agent_id", id.AgentID, "site", id.Site, "not_after", cert.NotAfter)
	return &pb.RenewResponse{CertDer: cert.Raw, CaDer: s.trust.CA.Cert.Raw}, nil
}

// intersectScopes is the part of the agent's scope its site allows. CIDRs
// either nest or are disjoint, so the pairwise smaller one is exact.
func intersectScopes(agent, site []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, a := range agent {
		for _, s := range site {
			if a.Addr().Is4() != s.Addr().Is4() || !a.Overlaps(s) {
				continue
			}
			p := a
			if s.Bits() > a.Bits() {
				p = s
			}
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// peerAddr is the caller's address, for the audit log.
func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
