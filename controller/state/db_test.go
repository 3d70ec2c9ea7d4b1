package state_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/agent/scanspec"
	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/jobs"
	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/controller/state"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrate.Template)
	pgtest.Main(m)
}

// TestConstantsMatchCheckConstraints reads each column's CHECK (col IN (...))
// from the migrated schema and compares it with the Go constants: a value
// added on one side only fails here.
func TestConstantsMatchCheckConstraints(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	cases := []struct {
		table, column string
		want          []string
	}{
		{"scan_jobs", "status", strs(state.JobStatuses())},
		{"scan_jobs", "kind", strs(state.JobKinds())},
		{"scan_job_leases", "outcome", strs(state.LeaseOutcomes())},
		{"agents", "state", strs(state.AgentStates())},
		{"host_history", "event", strs(state.ChangeEvents())},
		{"webhooks", "format", strs(state.WebhookFormats())},
		{"webhook_deliveries", "state", strs(state.DeliveryStates())},
		{"scan_runs", "outcome", strs(state.RunOutcomes())},
		{"scan_runs", "origin", []string{jobs.OriginSchedule, jobs.OriginScanNow}},
		{"scan_runs", "phase", []string{jobs.PhaseDiscovery, jobs.PhasePortScan, jobs.PhaseFinished}},
		{"scan_profiles", "scan_type", strs(scanspec.ScanTypes())},
		{"api_tokens", "role", roleNames()},
	}
	for _, c := range cases {
		t.Run(c.table+"."+c.column, func(t *testing.T) {
			t.Parallel()
			got := allowed(t, pool, c.table, c.column)
			slices.Sort(got)
			want := slices.Clone(c.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("CHECK allows %v; Go constants are %v", got, want)
			}
		})
	}
}

var quoted = regexp.MustCompile(`'((?:[^']|'')*)'::text`)

// allowed is the string set of the single-column CHECK (col IN (...)) on
// table.column; PostgreSQL stores it as (col = ANY (ARRAY['a'::text, ...])).
func allowed(t *testing.T, pool *pgxpool.Pool, table, column string) []string {
	t.Helper()
	var defs []string
	rows, err := pool.Query(context.Background(), `
		SELECT pg_get_constraintdef(c.oid)
		  FROM pg_constraint c
		  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
		 WHERE c.contype = 'c' AND c.conrelid = $1::regclass
		   AND cardinality(c.conkey) = 1 AND a.attname = $2`, table, column)
	if err != nil {
		t.Fatalf("read constraints: %v", err)
	}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(d, "= ANY (ARRAY[") {
			defs = append(defs, d)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(defs) != 1 {
		t.Fatalf("want one IN-list CHECK on %s.%s, found %q", table, column, defs)
	}
	var out []string
	for _, m := range quoted.FindAllStringSubmatch(defs[0], -1) {
		out = append(out, strings.ReplaceAll(m[1], "''", "'"))
	}
	if len(out) == 0 {
		t.Fatalf("no values in %q", defs[0])
	}
	return out
}

func roleNames() []string {
	var out []string
	for _, r := range authz.Roles() {
		out = append(out, r.String())
	}
	return out
}

func strs[S ~string](in []S) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}
