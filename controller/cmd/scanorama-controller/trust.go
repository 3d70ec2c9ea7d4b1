package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"

	"github.com/scanorama/scanorama/controller/audit"
	"github.com/scanorama/scanorama/controller/pgserver"
	"github.com/scanorama/scanorama/controller/pki"
	"github.com/scanorama/scanorama/controller/server"
	"github.com/scanorama/scanorama/gen/db"
)

// caCmd runs "ca init".
func caCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprint(stderr, "usage: scanorama-controller ca init --data-dir DIR [--database-url URL]\n")
		return 2
	}
	fs := flag.NewFlagSet("ca init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if err := checkArgs(fs); err != nil {
		return fail(stderr, err)
	}
	log, err := c.logger()
	if err != nil {
		return fail(stderr, err)
	}
	ca, err := pki.LoadCA(c.dataDir)
	created := false
	switch {
	case errors.Is(err, pki.ErrNoCA):
	case err != nil:
		return fail(stderr, fmt.Errorf("--data-dir: %w", err))
	}
	var q *db.Queries
	if c.databaseURL != "" {
		conn, done, err := connectDB(ctx, c, log)
		if err != nil {
			return fail(stderr, err)
		}
		defer done()
		q = db.New(conn)
		if ca == nil {
			fp, err := server.DatabaseCA(ctx, q)
			if err != nil {
				return fail(stderr, fmt.Errorf("--database-url: %w", err))
			}
			if fp != "" {
				return fail(stderr, fmt.Errorf("--data-dir %s: the database already has controller CA %s; refusing to create another. "+
					"Copy ca/ca.pem and ca/ca-key.pem from the controller that created it into %s",
					c.dataDir, fp, filepath.Join(c.dataDir, pki.CADir)))
			}
		}
	}
	if ca == nil {
		if ca, err = pki.NewCA("Scanorama controller CA"); err != nil {
			return fail(stderr, err)
		}
		if err := ca.Save(c.dataDir); err != nil {
			return fail(stderr, fmt.Errorf("--data-dir: %w", err))
		}
		created = true
	}
	if q != nil {
		if err := server.RegisterCA(ctx, q, ca); err != nil {
			return fail(stderr, err)
		}
	}
	certFile, keyFile := pki.Paths(c.dataDir)
	if created {
		fmt.Fprintf(stdout, "created controller CA %s\n  certificate %s\n  private key %s (0600: copy it to every controller on this database, keep it secret)\n",
			ca.Fingerprint(), certFile, keyFile)
	} else {
		fmt.Fprintf(stdout, "controller CA %s already exists in %s; nothing overwritten\n", ca.Fingerprint(), filepath.Dir(certFile))
	}
	fmt.Fprintf(stdout, "fingerprint sha256:%s\n", ca.Fingerprint())
	return 0
}

// agentCmd runs "agent enroll|tokens|revoke-token".
func agentCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const agentUsage = "usage: scanorama-controller agent enroll --site S [--ttl 24h] [--uses 1] | agent tokens | agent revoke-token --id ID  [--database-url URL] [--data-dir DIR]\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, agentUsage)
		return 2
	}
	fs := flag.NewFlagSet("agent "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	site := fs.String("site", "", "site the enrolled agent will serve")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token stays valid")
	uses := fs.Int("uses", 1, "how many agents may enroll with the token")
	id := fs.String("id", "", "token id (see agent tokens)")
	switch args[0] {
	case "enroll", "tokens", "revoke-token":
	default:
		fmt.Fprintf(stderr, "scanorama-controller agent: unknown command %q\n%s", args[0], agentUsage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if err := checkArgs(fs); err != nil {
		return fail(stderr, err)
	}
	log, err := c.logger()
	if err != nil {
		return fail(stderr, err)
	}
	switch args[0] {
	case "enroll":
		if *site == "" {
			return fail(stderr, errors.New("--site: required, e.g. --site lab"))
		}
		if *ttl < time.Second || *ttl > 365*24*time.Hour {
			return fail(stderr, fmt.Errorf("--ttl: %s is outside 1s..8760h", *ttl))
		}
		if *uses < 1 || *uses > 10000 {
			return fail(stderr, fmt.Errorf("--uses: %d is outside 1..10000", *uses))
		}
	case "revoke-token":
		if *id == "" {
			return fail(stderr, errors.New("--id: required (see agent tokens)"))
		}
	}
	conn, done, err := connectDB(ctx, c, log)
	if err != nil {
		return fail(stderr, err)
	}
	defer done()
	q := db.New(conn)
	switch args[0] {
	case "tokens":
		rows, err := q.ListEnrollmentTokens(ctx, 1000)
		if err != nil {
			return fail(stderr, err)
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSITE\tUSES\tEXPIRES\tSTATE")
		for _, r := range rows {
			state := "valid"
			switch {
			case r.RevokedAt.Valid:
				state = "revoked"
			case r.Expired:
				state = "expired"
			case r.Uses >= r.MaxUses:
				state = "used"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", r.ID, r.SiteName, r.Uses, r.MaxUses, r.ExpiresAt.UTC().Format(time.RFC3339), state)
		}
		_ = tw.Flush()
		return 0
	case "revoke-token":
		n, err := q.RevokeEnrollmentToken(ctx, *id)
		if err != nil {
			return fail(stderr, err)
		}
		if n == 0 {
			return fail(stderr, fmt.Errorf("--id: no unrevoked token %q", *id))
		}
		if err := audit.Record(ctx, conn, audit.Event{Actor: cliActor(), Role: "admin", Action: "enrollment_token.revoke",
			ObjectIDs: []string{*id}, Outcome: codes.OK}); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "revoked enrollment token %s\n", *id)
		return 0
	}
	// enroll
	caFP, err := server.DatabaseCA(ctx, q)
	if err != nil {
		return fail(stderr, err)
	}
	if caFP == "" {
		ca, err := pki.LoadCA(c.dataDir)
		if err != nil {
			return fail(stderr, fmt.Errorf("--data-dir: %w; run scanorama-controller ca init first", err))
		}
		if err := server.RegisterCA(ctx, q, ca); err != nil {
			return fail(stderr, err)
		}
		caFP = ca.Fingerprint()
	}
	s, err := q.GetSiteByName(ctx, *site)
	if errors.Is(err, pgx.ErrNoRows) {
		return fail(stderr, fmt.Errorf("--site: no site named %q; create it with AdminService.CreateSite", *site))
	}
	if err != nil {
		return fail(stderr, err)
	}
	tok, err := pki.NewToken(caFP)
	if err != nil {
		return fail(stderr, err)
	}
	row, err := q.CreateEnrollmentToken(ctx, db.CreateEnrollmentTokenParams{
		ID: tok.ID, SecretHash: tok.SecretHash(), SiteID: s.ID, MaxUses: int32(*uses), TtlSeconds: ttl.Seconds(), CreatedBy: cliActor(),
	})
	if err != nil {
		return fail(stderr, err)
	}
	if err := audit.Record(ctx, conn, audit.Event{Actor: cliActor(), Role: "admin", Action: "enrollment_token.create",
		SiteID: uuid.NullUUID{UUID: s.ID, Valid: true}, ObjectIDs: []string{row.ID}, Outcome: codes.OK,
		Message: fmt.Sprintf("uses=%d ttl=%s", row.MaxUses, *ttl)}); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "enrollment token %s for site %s: %d use(s), expires %s\n", row.ID, s.Name, row.MaxUses, row.ExpiresAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "start the agent with: scanorama-agent --controller HOST:PORT --data-dir DIR --enroll-token TOKEN\n")
	fmt.Fprintln(stdout, tok.String())
	return 0
}

func cliActor() string {
	if u := os.Getenv("USER"); u != "" {
		return "cli:" + u
	}
	return "cli"
}

// connectDB opens the database of --database-url, or the managed one under
// --data-dir (the one a running controller on that directory started, or one
// started for this command and stopped by the returned func), and brings its
// schema up to date.
func connectDB(ctx context.Context, c common, log hclog.Logger) (*pgx.Conn, func(), error) {
	dbURL := c.databaseURL
	cleanup := func() {}
	if dbURL == "" {
		pg, err := pgserver.Start(ctx, pgserver.Options{DataDir: c.dataDir, Logger: log.Named("postgres")})
		switch {
		case errors.Is(err, pgserver.ErrDataDirInUse):
			if dbURL, err = runningManagedURL(c.dataDir); err != nil {
				return nil, nil, fmt.Errorf("--data-dir %s is in use by a controller and its database is unreachable: %w", c.dataDir, err)
			}
		case err != nil:
			return nil, nil, fmt.Errorf("start managed PostgreSQL: %w", err)
		default:
			dbURL = pg.URL(pgserver.DefaultDatabase)
			cleanup = func() { _ = pg.Stop(context.Background()) }
		}
	}
	if err := server.Migrate(ctx, dbURL, log); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("--database-url: %w", err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("--database-url: %w", err)
	}
	return conn, func() { _ = conn.Close(context.Background()); cleanup() }, nil
}

// runningManagedURL builds the URL of the managed PostgreSQL a running
// controller started under dataDir.
func runningManagedURL(dataDir string) (string, error) {
	port, err := os.ReadFile(filepath.Join(dataDir, "port"))
	if err != nil {
		return "", err
	}
	pw, err := os.ReadFile(filepath.Join(dataDir, "pgpassword"))
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(port)))
	if err != nil {
		return "", fmt.Errorf("port file: %w", err)
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(pgserver.SuperUser, strings.TrimSpace(string(pw))),
		Host: net.JoinHostPort(pgserver.ListenAddress, strconv.Itoa(p)), Path: "/" + pgserver.DefaultDatabase, RawQuery: "sslmode=disable"}
	return u.String(), nil
}
