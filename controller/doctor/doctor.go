// Package doctor checks a controller's surroundings: its database (reachable,
// version, schema current, port_scans partitions created ahead, expired
// leases not piling up, i.e. a reaper runs) and its TLS certificates. Each
// check yields one line: OK, WARN or FAIL with what to fix.
package doctor

import (
	"context"
	"crypto/x509"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	agentdoctor "github.com/scanorama/scanorama/agent/doctor"
	"github.com/scanorama/scanorama/controller/maintenance"
	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/server"
	"github.com/scanorama/scanorama/gen/db"
)

// The line format, statuses and certificate reading are the agent
// doctor's (agent/doctor), so both doctors print alike.
type (
	// Status is a check's outcome.
	Status = agentdoctor.Status
	// Result is one check's line.
	Result = agentdoctor.Result
)

// Check outcomes; only Fail makes the doctor exit non-zero.
const (
	OK   = agentdoctor.OK
	Warn = agentdoctor.Warn
	Fail = agentdoctor.Fail
)

// Report prints one line per result and reports whether any failed.
func Report(w io.Writer, results []Result) bool { return agentdoctor.Report(w, results) }

var (
	ok        = agentdoctor.Okf
	warn      = agentdoctor.Warnf
	fail      = agentdoctor.Failf
	readCerts = agentdoctor.ReadCerts
)

// CertWarnWithin warns of a certificate that expires this soon.
const CertWarnWithin = 14 * 24 * time.Hour

// Options are what the controller doctor checks.
type Options struct {
	DatabaseURL string
	// LeaseTTL is the controllers' --lease-ttl: a lease expired for more
	// than two of them while still held means no reaper runs.
	LeaseTTL time.Duration
	TLS      server.TLSFiles
	Now      func() time.Time
}

// Controller runs every check.
func Controller(ctx context.Context, o Options) []Result {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	out := databaseChecks(ctx, o)
	return append(out, tlsChecks(o.TLS, o.Now())...)
}

func databaseChecks(ctx context.Context, o Options) []Result {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, o.DatabaseURL)
	if err != nil {
		return []Result{fail("database", "unreachable: %v; check --database-url and that PostgreSQL runs", err)}
	}
	defer conn.Close(context.Background())
	q := db.New(conn)
	sv, err := q.ServerVersion(cctx)
	if err != nil {
		return []Result{fail("database", "connected but cannot query: %v", err)}
	}
	out := []Result{ok("database", "reachable, PostgreSQL %s", sv.Version)}

	all, err := migrate.All()
	if err != nil {
		return append(out, fail("migrations", "%v", err))
	}
	v, err := migrate.Version(cctx, conn)
	switch {
	case err != nil:
		return append(out, fail("migrations", "cannot read the schema version: %v", err))
	case v < len(all):
		return append(out, fail("migrations", "schema version %d, this controller needs %d; run: scanorama-controller migrate --database-url ...", v, len(all)))
	case v > len(all):
		out = append(out, fail("migrations", "schema version %d is newer than this controller knows (%d); upgrade the controller", v, len(all)))
	default:
		out = append(out, ok("migrations", "schema version %d, current", v))
	}

	months, err := q.PortScanPartitionMonthsAhead(cctx)
	switch {
	case err != nil:
		out = append(out, fail("partitions", "cannot list port_scans partitions: %v", err))
	case months == 0:
		out = append(out, fail("partitions", "no port_scans partition for next month: results would land in port_scans_default; "+
			"start a controller (it creates %d months ahead at start and daily)", maintenance.PartitionMonthsAhead))
	case months < maintenance.PartitionMonthsAhead:
		out = append(out, warn("partitions", "port_scans partitions exist %d month(s) ahead, fewer than the %d a running controller keeps", months, maintenance.PartitionMonthsAhead))
	default:
		out = append(out, ok("partitions", "port_scans partitions exist %d months ahead", months))
	}

	grace := 2 * o.LeaseTTL
	b, err := q.ExpiredLeaseBacklog(cctx, grace.Seconds())
	switch {
	case err != nil:
		out = append(out, fail("leases", "cannot count expired leases: %v", err))
	case b.Jobs > 0:
		out = append(out, fail("leases", "%d lease(s) expired more than %s ago are still held (oldest %s): no reaper is running; "+
			"start a controller on this database (or pass its --lease-ttl)", b.Jobs, grace, (time.Duration(b.OldestSeconds*float64(time.Second))).Round(time.Second)))
	default:
		out = append(out, ok("leases", "no lease expired more than %s ago is still held (a reaper runs, or none was needed)", grace))
	}
	return out
}

// tlsChecks validates the certificate files as serve would load them and
// reports each certificate's expiry.
func tlsChecks(f server.TLSFiles, now time.Time) []Result {
	if !f.Enabled() {
		return []Result{warn("tls", "off: the gRPC API would serve plaintext; use --tls-cert, --tls-key and --tls-client-ca outside loopback")}
	}
	if _, _, err := f.Config(); err != nil {
		return []Result{fail("tls", "%v", err)}
	}
	var out []Result
	for _, file := range []struct{ flag, path string }{
		{"--tls-cert", f.CertFile}, {"--tls-client-ca", f.ClientCAFile}, {"--tls-admin-ca", f.AdminCAFile},
	} {
		if file.path == "" {
			continue
		}
		certs, err := readCerts(file.path)
		if err != nil {
			out = append(out, fail("tls", "%s %s: %v", file.flag, file.path, err))
			continue
		}
		if file.flag == "--tls-cert" {
			certs = certs[:1] // the leaf; the chain's CAs outlive it
		}
		for _, c := range certs {
			out = append(out, certExpiry(file.flag, c, now))
		}
	}
	return out
}

func certExpiry(flag string, c *x509.Certificate, now time.Time) Result {
	name := c.Subject.CommonName
	if name == "" {
		name = c.Subject.String()
	}
	left := c.NotAfter.Sub(now)
	until := c.NotAfter.UTC().Format(time.RFC3339)
	switch {
	case now.Before(c.NotBefore):
		return fail("tls", "%s %q is not valid before %s; check this host's clock or reissue it", flag, name, c.NotBefore.UTC().Format(time.RFC3339))
	case left <= 0:
		return fail("tls", "%s %q expired at %s; renew it", flag, name, until)
	case left < CertWarnWithin:
		return warn("tls", "%s %q expires in %d days (%s); renew it soon", flag, name, int(left.Hours()/24), until)
	}
	return ok("tls", "%s %q valid until %s (%d days)", flag, name, until, int(left.Hours()/24))
}
