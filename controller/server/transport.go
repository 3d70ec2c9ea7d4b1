package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/scanorama/scanorama/controller/authz"
)

// ErrNoTransportSecurity is why serve refuses to start without TLS material
// and without --insecure. Each way to secure the API is one line of
// transportWays, so more ways (a CA from ca init) extend the message.
var ErrNoTransportSecurity = errors.New("refusing to serve without transport security")

// transportWays lists how an operator secures serve.
var transportWays = []string{
	"--tls-cert and --tls-key (optionally --tls-client-ca/--tls-admin-ca for client certificates)",
	"a controller CA under --data-dir (scanorama-controller ca init): TLS with enrolled agents and bearer tokens for people",
	"--insecure for plaintext without authentication, on a loopback --listen address only (tests, demos)",
}

// CheckTransport enforces safe defaults before anything listens: plaintext
// needs insecure, and insecure needs a loopback listen address.
func CheckTransport(listen string, hasTLS, insecure bool) error {
	if !hasTLS && !insecure {
		return fmt.Errorf("%w: give %s", ErrNoTransportSecurity, strings.Join(transportWays, "; or "))
	}
	if insecure {
		host, _, err := net.SplitHostPort(listen)
		if err != nil {
			return fmt.Errorf("--listen: %q is not host:port", listen)
		}
		if !LoopbackHost(host) {
			return fmt.Errorf("--insecure: --listen %s is not a loopback address (127.0.0.0/8, ::1, localhost); "+
				"insecure serving is for one machine only", listen)
		}
	}
	return nil
}

// LoopbackHost reports whether host is a loopback IP or "localhost".
func LoopbackHost(host string) bool {
	return strings.EqualFold(host, "localhost") || isLoopback(host)
}

// certInfo tells authz about the caller's client certificate: with Roles,
// a certificate of an --tls-admin-ca CA is an admin's; without Roles but with
// --tls-client-ca, every verified client certificate is (as before roles
// existed, when one CA signed agents and admins alike).
func certInfo(cfg *tls.Config, roles *Roles, clientCAIsAdmin bool) func(ctx context.Context) authz.CertInfo {
	return func(ctx context.Context) authz.CertInfo {
		p, ok := peer.FromContext(ctx)
		if !ok {
			return authz.CertInfo{}
		}
		info, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok || len(info.State.VerifiedChains) == 0 {
			return authz.CertInfo{}
		}
		leaf := info.State.VerifiedChains[0][0]
		ci := authz.CertInfo{Present: true, Subject: leaf.Subject.String()}
		switch {
		case roles != nil:
			for _, chain := range info.State.VerifiedChains {
				for _, c := range chain[1:] {
					for _, ca := range roles.adminCAs.get() {
						if c.Equal(ca) {
							ci.Admin = true
						}
					}
				}
			}
		case clientCAIsAdmin && cfg.ClientCAs != nil:
			ci.Admin = true
		}
		return ci
	}
}
