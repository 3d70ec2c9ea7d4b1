package enroll

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/controller/pki"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Request is what an agent enrolls with.
type Request struct {
	// Controllers are tried in order until one answers.
	Controllers []string
	// Token is the one-time enrollment token; it also pins the controller CA.
	Token    string
	Name     string
	Hostname string
	Version  string
	// Dir receives the identity files.
	Dir string
}

// Enroll generates the agent's key, sends a CSR with the token, checks and
// stores what the controller returns, and returns the new credentials. The
// controller is trusted only if its chain holds the CA the token pins.
// Unreachable controllers are retried until ctx ends; a refused token is
// final.
func Enroll(ctx context.Context, req Request, log hclog.Logger) (*Credentials, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	tok, err := pki.ParseToken(req.Token)
	if err != nil {
		return nil, fmt.Errorf("--enroll-token: %w", err)
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, req.Name)
	if err != nil {
		return nil, err
	}
	creds := credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS12,
		// The default verification needs a root we do not have yet; the
		// pinned verifier below replaces it (chain to the token's CA).
		InsecureSkipVerify:    true, //nolint:gosec // replaced by VerifyPeerCertificate pinning the CA
		VerifyPeerCertificate: pki.PinnedVerifier(tok.CAFingerprint),
	})
	retry := 500 * time.Millisecond
	for {
		var lastErr error
		for _, addr := range req.Controllers {
			resp, err := enrollAt(ctx, addr, creds, &pb.EnrollRequest{
				Token: req.Token, CsrDer: csr, Name: req.Name, Hostname: req.Hostname, Version: req.Version,
			})
			if err == nil {
				m, err := verifyIssued(resp.GetCertDer(), resp.GetCaDer(), key, nil)
				if err != nil {
					return nil, err
				}
				if pki.Fingerprint(m.ca) != tok.CAFingerprint {
					return nil, errors.New("controller returned a CA that the enrollment token does not pin")
				}
				if err := m.save(req.Dir); err != nil {
					return nil, fmt.Errorf("--data-dir: %w", err)
				}
				log.Info("enrolled", "controller", addr, "agent_id", m.id.AgentID, "site", m.id.Site, "state", resp.GetState(),
					"not_after", m.leaf.NotAfter)
				return newCredentials(req.Dir, m, log), nil
			}
			switch status.Code(err) {
			case codes.Unavailable, codes.DeadlineExceeded:
				lastErr = err
				continue
			}
			return nil, fmt.Errorf("controller %s refused enrollment: %s", addr, status.Convert(err).Message())
		}
		log.Warn("no controller reachable for enrollment; retrying", "error", lastErr, "retry_in", retry)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("enroll: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(retry):
		}
		retry = min(retry*2, 10*time.Second)
	}
}

func enrollAt(ctx context.Context, addr string, creds credentials.TransportCredentials, req *pb.EnrollRequest) (*pb.EnrollResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return pb.NewAgentServiceClient(conn).Enroll(cctx, req)
}
