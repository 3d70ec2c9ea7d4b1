package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"

	"github.com/scanorama/scanorama/controller/audit"
	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/pgserver"
	"github.com/scanorama/scanorama/controller/server"
	"github.com/scanorama/scanorama/controller/tokens"
	"github.com/scanorama/scanorama/gen/db"
)

const tokenUsage = `usage: scanorama-controller token <create|list|revoke> [flags]

  token create --role admin|operator|viewer [--site S ...] [--ttl D] [--name N]
               prints the bearer token alone on its last line of stdout
  token list
  token revoke ID

All take --database-url URL or --data-dir D (the managed database; stop
serve first, or use the URL of the database serve uses).
`

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func tokenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return 2
	}
	fs := flag.NewFlagSet("token "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	var role, name string
	var sites stringList
	var ttl time.Duration
	switch args[0] {
	case "create":
		fs.StringVar(&role, "role", "", "admin, operator or viewer (required)")
		fs.Var(&sites, "site", "confine the token to this site (repeatable or comma-separated); none: every site")
		fs.DurationVar(&ttl, "ttl", 0, "lifetime, e.g. 720h; 0: never expires")
		fs.StringVar(&name, "name", "", "label for people and the audit log (default: cli-<user>-<time>)")
	case "list", "revoke":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, tokenUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "scanorama-controller token: unknown command %q\n%s", args[0], tokenUsage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var revokeID string
	if args[0] == "revoke" {
		if fs.NArg() != 1 {
			return fail(stderr, errors.New("token revoke: give exactly one token ID (see token list)"))
		}
		revokeID = fs.Arg(0)
		if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(revokeID) {
			return fail(stderr, fmt.Errorf("token revoke: ID %q is not 16 hex digits (the part after scn_)", revokeID))
		}
	} else if err := checkArgs(fs); err != nil {
		return fail(stderr, err)
	}
	var r authz.Role
	who := cliUser()
	if args[0] == "create" {
		var err error
		if role == "" {
			return fail(stderr, errors.New("--role: required (admin, operator or viewer)"))
		}
		if r, err = authz.ParseRole(role); err != nil {
			return fail(stderr, fmt.Errorf("--role: %w", err))
		}
		if ttl < 0 || (ttl > 0 && ttl < time.Minute) {
			return fail(stderr, fmt.Errorf("--ttl: %s must be 0 (never expires) or at least 1m", ttl))
		}
		if name == "" {
			name = "cli-" + who + "-" + time.Now().UTC().Format("20060102T150405")
		}
		if len(name) > 128 {
			return fail(stderr, errors.New("--name: at most 128 characters"))
		}
	}
	log, err := c.logger()
	if err != nil {
		return fail(stderr, err)
	}
	url := c.databaseURL
	if url == "" {
		pg, err := pgserver.Start(ctx, pgserver.Options{DataDir: c.dataDir, Logger: log.Named("postgres")})
		if err != nil {
			return fail(stderr, fmt.Errorf("--data-dir: start managed PostgreSQL: %w", err))
		}
		defer pg.Stop(context.Background()) //nolint:errcheck // best effort on exit
		url = pg.URL(pgserver.DefaultDatabase)
	}
	if err := server.Migrate(ctx, url, log); err != nil {
		return fail(stderr, fmt.Errorf("--database-url: %w", err))
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fail(stderr, fmt.Errorf("--database-url: %w", err))
	}
	defer pool.Close()
	q := db.New(pool)
	actor := authz.Principal{Kind: authz.KindCLI, Name: who, Role: authz.RoleAdmin}.Identity()
	switch args[0] {
	case "create":
		return tokenCreate(ctx, pool, q, tokens.Spec{Name: name, Role: r, TTL: ttl, CreatedBy: actor}, sites, stdout, stderr)
	case "list":
		return tokenList(ctx, q, stdout, stderr)
	default:
		row, err := q.RevokeAPIToken(ctx, db.RevokeAPITokenParams{ID: revokeID, RevokedBy: pgtype.Text{String: actor, Valid: true}})
		if errors.Is(err, pgx.ErrNoRows) {
			return fail(stderr, fmt.Errorf("token revoke: no unrevoked token %s", revokeID))
		}
		if err != nil {
			return fail(stderr, err)
		}
		if err := audit.Record(ctx, pool, audit.Event{Actor: actor, Role: "admin", Action: "token.revoke", ObjectIDs: []string{row.ID}, Outcome: codes.OK}); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "token %s (%s) revoked\n", row.ID, row.Name)
		return 0
	}
}

func tokenCreate(ctx context.Context, pool *pgxpool.Pool, q *db.Queries, spec tokens.Spec, sites []string, stdout, stderr io.Writer) int {
	if len(sites) > 0 {
		rows, err := q.SiteIDsByName(ctx, sites)
		if err != nil {
			return fail(stderr, err)
		}
		byName := map[string]db.SiteIDsByNameRow{}
		for _, r := range rows {
			byName[r.Name] = r
		}
		for _, s := range sites {
			r, ok := byName[s]
			if !ok {
				return fail(stderr, fmt.Errorf("--site: no site named %q", s))
			}
			spec.Sites = append(spec.Sites, r.ID)
		}
	}
	row, secret, err := tokens.Create(ctx, q, spec)
	if err != nil {
		return fail(stderr, err)
	}
	ev := audit.Event{Actor: spec.CreatedBy, Role: "admin", Action: "token.create", ObjectIDs: []string{row.ID}, Outcome: codes.OK,
		Message: fmt.Sprintf("name=%s role=%s sites=%s", row.Name, row.Role, strings.Join(sites, ","))}
	if len(spec.Sites) == 1 {
		ev.SiteID.UUID, ev.SiteID.Valid = spec.Sites[0], true
	}
	if err := audit.Record(ctx, pool, ev); err != nil {
		return fail(stderr, err)
	}
	scope := "every site"
	if len(sites) > 0 {
		scope = "sites " + strings.Join(sites, ",")
	}
	expires := "never expires"
	if row.ExpiresAt.Valid {
		expires = "expires " + row.ExpiresAt.Time.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "token %s %q: role %s, %s, %s; shown once, stored hashed; send it as authorization: Bearer <token>\n",
		row.ID, row.Name, row.Role, scope, expires)
	fmt.Fprintln(stdout, secret)
	return 0
}

func tokenList(ctx context.Context, q *db.Queries, stdout, stderr io.Writer) int {
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tROLE\tSITES\tCREATED\tEXPIRES\tREVOKED")
	var p db.ListAPITokensParams
	for {
		p.RowLimit = 500
		rows, err := q.ListAPITokens(ctx, p)
		if err != nil {
			return fail(stderr, err)
		}
		for _, r := range rows {
			t := r.ApiToken
			sites := strings.Join(r.SiteNames, ",")
			if sites == "" {
				sites = "*"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, sites, t.CreatedAt.UTC().Format(time.RFC3339),
				tsOr(t.ExpiresAt, "never"), tsOr(t.RevokedAt, "-"))
		}
		if len(rows) < int(p.RowLimit) {
			break
		}
		last := rows[len(rows)-1].ApiToken
		p.AfterCreated, p.AfterID = pgtype.Timestamptz{Time: last.CreatedAt, Valid: true}, last.ID
	}
	if err := w.Flush(); err != nil {
		return fail(stderr, err)
	}
	return 0
}

func tsOr(t pgtype.Timestamptz, none string) string {
	if !t.Valid {
		return none
	}
	return t.Time.UTC().Format(time.RFC3339)
}

func cliUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "unknown"
}
