package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/maintenance"
	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrate.Template)
	pgtest.Main(m)
}

const fixture = `
INSERT INTO sites (id, name) VALUES ('00000000-0000-0000-0000-0000000000a1', 'lab');
INSERT INTO scan_targets (id, site_id, name, network, profile_id)
  SELECT '00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 't', '10.99.0.0/24', id FROM scan_profiles WHERE name = 'quick';
INSERT INTO scan_jobs (id, target_id, site_id, profile_id, network, options)
  SELECT '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', id, '10.99.0.0/24', '{}' FROM scan_profiles WHERE name = 'quick';
INSERT INTO hosts (id, site_id, ip_address) VALUES ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000a1', '10.99.0.10');
`

// Retention moves whole old months out of port_scans into the archive
// schema, keeps the recent ones, and is idempotent.
func TestArchiveOldMonths(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	if _, err := pool.Exec(ctx, fixture); err != nil {
		t.Fatal(err)
	}
	m := maintenance.New(pool, hclog.NewNullLogger())
	m.Now = func() time.Time { return time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC) }
	m.RetentionMonths = 2
	if _, err := pool.Exec(ctx, `SELECT ensure_port_scan_partitions('2026-06-01', 7)`); err != nil {
		t.Fatal(err)
	}
	for _, month := range []string{"2026-06-10", "2026-07-10", "2026-08-10", "2026-09-10", "2026-10-10", "2026-11-10"} {
		if _, err := pool.Exec(ctx, `INSERT INTO port_scans (job_id, host_id, port, protocol, state, scanned_at)
			VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 22, 'tcp', 'open', $1)`, month); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := m.RetentionCutoff(), time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("cutoff %s, want %s", got, want)
	}
	moved, err := m.Archive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"port_scans_2026_06", "port_scans_2026_07", "port_scans_2026_08"}
	if len(moved) != len(want) {
		t.Fatalf("moved %v, want %v", moved, want)
	}
	for i := range want {
		if moved[i] != want[i] {
			t.Fatalf("moved %v, want %v", moved, want)
		}
	}
	var live, archived int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM port_scans`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM archive.port_scans_2026_06) + (SELECT count(*) FROM archive.port_scans_2026_07) + (SELECT count(*) FROM archive.port_scans_2026_08)`).Scan(&archived); err != nil {
		t.Fatal(err)
	}
	if live != 3 || archived != 3 {
		t.Fatalf("live %d archived %d, want 3 and 3", live, archived)
	}
	again, err := m.Archive(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("second archive moved %v (%v); want nothing", again, err)
	}
}
