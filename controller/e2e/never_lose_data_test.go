package e2e_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// newStackOnDatabase starts a controller on loopback on an existing database.
func newStackOnDatabase(t *testing.T, dbURL string, controllerArgs ...string) *stack {
	t.Helper()
	s := &stack{t: t, dbURL: dbURL, addr: freePortOn(t, netip.MustParseAddr("127.0.0.1")),
		extra: append([]string{"--insecure"}, controllerArgs...), creds: insecure.NewCredentials(), agentArgs: []string{"--insecure"}}
	s.startController()
	s.connect()
	return s
}

// scanTarget creates a target in site "lab" and commits one job's results
// for it through a simulated agent: hosts with the given open ports.
func scanTarget(t *testing.T, s *stack, a *simAgent, network string, hosts ...*pb.HostResult) *pb.Target {
	t.Helper()
	jobs := setupTarget(t, s, network, "22,80")
	l := a.acquire(5 * time.Second)
	if l.GetJobId() != jobs[0].GetId() {
		t.Fatalf("leased %s, want %s", l.GetJobId(), jobs[0].GetId())
	}
	if _, err := a.send(s.ctx(), l, [][]*pb.HostResult{hosts}, false); err != nil {
		t.Fatal(err)
	}
	s.waitStatus(l.GetJobId(), pb.JobStatus_JOB_STATUS_COMPLETED, 10*time.Second)
	return mustTarget(t, s, jobs[0].GetTargetId())
}

func mustTarget(t *testing.T, s *stack, id string) *pb.Target {
	t.Helper()
	resp, err := s.admin.GetTarget(s.ctx(), &pb.GetTargetRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetTarget()
}

func wantCode(t *testing.T, err error, code codes.Code, contains ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want %s", err, code)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Fatalf("error %q does not say %q", err, c)
		}
	}
}

func targetNames(t *testing.T, s *stack, includeArchived bool) []string {
	t.Helper()
	resp, err := s.admin.ListTargets(s.ctx(), &pb.ListTargetsRequest{Site: "lab", IncludeArchived: includeArchived})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range resp.GetTargets() {
		out = append(out, x.GetName())
	}
	return out
}

// Deletes never destroy history silently: with results, DeleteTarget,
// DeleteSite and DeleteProfile refuse with the counts; archive keeps
// everything and hides; purge makes the object disappear at once and the
// controller's maintenance loop removes its rows, and nobody else's.
func TestDeleteRefusesArchivesAndPurges(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(s.ctx(), &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	kept := scanTarget(t, s, a, "10.99.11.0/24", host("10.99.11.10", 22, 80), host("10.99.11.11", 22))
	gone := scanTarget(t, s, a, "10.99.12.0/24", host("10.99.12.10", 22, 80))

	// Refusals name the counts and write nothing.
	_, err := s.admin.DeleteTarget(ctx, &pb.DeleteTargetRequest{Id: kept.GetId()})
	wantCode(t, err, codes.FailedPrecondition, "1 jobs", "3 result rows", "archive", "purge")
	_, err = s.admin.DeleteSite(ctx, &pb.DeleteSiteRequest{Name: "lab"})
	wantCode(t, err, codes.FailedPrecondition, "2 jobs", "5 result rows", "3 hosts")
	_, err = s.admin.DeleteTarget(ctx, &pb.DeleteTargetRequest{Id: kept.GetId(), Archive: true, Purge: true})
	wantCode(t, err, codes.InvalidArgument, "archive", "purge")
	if _, err := s.admin.CreateProfile(ctx, &pb.CreateProfileRequest{Name: "web", Options: &pb.ScanOptions{ScanType: pb.ScanType_SCAN_TYPE_CONNECT, Ports: "80"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "web", Network: "10.99.13.0/24", Profile: "web"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.admin.DeleteProfile(ctx, &pb.DeleteProfileRequest{Name: "web"})
	wantCode(t, err, codes.FailedPrecondition, "1 targets", "0 jobs")
	if n := s.count(`SELECT count(*) FROM port_scans`); n != 5 {
		t.Fatalf("%d port_scans rows after refused deletes, want 5", n)
	}

	// A target without jobs still just goes.
	web := targetNames(t, s, false)
	if len(web) != 3 {
		t.Fatalf("targets %v", web)
	}
	var webID string
	if err := s.pool.QueryRow(ctx, `SELECT id::text FROM scan_targets WHERE name = 'web'`).Scan(&webID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.DeleteTarget(ctx, &pb.DeleteTargetRequest{Id: webID}); err != nil {
		t.Fatalf("delete a target without jobs: %v", err)
	}
	if _, err := s.admin.DeleteProfile(ctx, &pb.DeleteProfileRequest{Name: "web"}); err != nil {
		t.Fatalf("delete the profile nobody uses any more: %v", err)
	}

	// Archive: kept, hidden by default, shown with include_archived, no scanning.
	if _, err := s.admin.DeleteTarget(ctx, &pb.DeleteTargetRequest{Id: kept.GetId(), Archive: true}); err != nil {
		t.Fatal(err)
	}
	if got := targetNames(t, s, false); len(got) != 1 || got[0] != gone.GetName() {
		t.Fatalf("ListTargets after archiving %s: %v", kept.GetName(), got)
	}
	if got := targetNames(t, s, true); len(got) != 2 {
		t.Fatalf("ListTargets include_archived: %v; want both", got)
	}
	if at := mustTarget(t, s, kept.GetId()); at.GetArchivedAt() == nil || at.GetEnabled() {
		t.Fatalf("archived target reads %v", at)
	}
	_, err = s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: kept.GetId()})
	wantCode(t, err, codes.FailedPrecondition, "archived")
	hosts, err := s.admin.ListHosts(ctx, &pb.ListHostsRequest{Site: "lab"})
	if err != nil || len(hosts.GetHosts()) != 3 {
		t.Fatalf("hosts after archive: %v, %v", hosts, err)
	}

	// Purge: gone from the API at once, rows removed in the background.
	if _, err := s.admin.DeleteTarget(ctx, &pb.DeleteTargetRequest{Id: gone.GetId(), Purge: true}); err != nil {
		t.Fatal(err)
	}
	_, err = s.admin.GetTarget(ctx, &pb.GetTargetRequest{Id: gone.GetId()})
	wantCode(t, err, codes.NotFound)
	if got := targetNames(t, s, true); len(got) != 1 || got[0] != kept.GetName() {
		t.Fatalf("ListTargets include_archived after purge: %v", got)
	}
	waitCount(t, s, `SELECT count(*) FROM scan_targets WHERE id = $1`, 0, gone.GetId())
	for _, c := range []struct {
		sql  string
		want int
	}{
		{`SELECT count(*) FROM scan_jobs`, 1},
		{`SELECT count(*) FROM port_scans`, 3},
		{`SELECT count(*) FROM host_history WHERE job_id IS NOT NULL`, 5}, // the kept job's: 2 hosts discovered, 3 ports opened
		{`SELECT count(*) FROM hosts`, 3},                                 // hosts belong to the site
	} {
		if n := s.count(c.sql); n != c.want {
			t.Errorf("%s = %d after purging %s, want %d", c.sql, n, gone.GetName(), c.want)
		}
	}

	// Sites: archive hides, include_archived shows; purge frees the name.
	if _, err := s.admin.DeleteSite(ctx, &pb.DeleteSiteRequest{Name: "lab", Archive: true}); err != nil {
		t.Fatal(err)
	}
	sites, err := s.admin.ListSites(ctx, &pb.ListSitesRequest{})
	if err != nil || len(sites.GetSites()) != 0 {
		t.Fatalf("ListSites after archiving lab: %v, %v", sites, err)
	}
	sites, err = s.admin.ListSites(ctx, &pb.ListSitesRequest{IncludeArchived: true})
	if err != nil || len(sites.GetSites()) != 1 || sites.GetSites()[0].GetArchivedAt() == nil {
		t.Fatalf("ListSites include_archived: %v, %v", sites, err)
	}
	_, err = s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "late", Network: "10.99.14.0/24", Ports: "22"})
	wantCode(t, err, codes.FailedPrecondition, "archived")
	if _, err := s.admin.DeleteSite(ctx, &pb.DeleteSiteRequest{Name: "lab", Purge: true}); err != nil {
		t.Fatal(err)
	}
	_, err = s.admin.ListHosts(ctx, &pb.ListHostsRequest{Site: "lab"})
	wantCode(t, err, codes.NotFound)
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatalf("the name of a purged site is free at once: %v", err)
	}
	waitCount(t, s, `SELECT count(*) FROM sites WHERE purge_requested_at IS NOT NULL`, 0)
	for _, table := range []string{"scan_targets", "scan_jobs", "scan_runs", "port_scans", "hosts", "services", "host_history", "agents"} {
		if n := s.count(`SELECT count(*) FROM ` + table); n != 0 {
			t.Errorf("%s has %d rows after the site's purge", table, n)
		}
	}
}

// waitCount polls until sql returns want (the purge runs every 2 s).
func waitCount(t *testing.T, s *stack, sql string, want int, args ...any) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for s.count(sql, args...) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s is still %d after 60s, want %d", sql, s.count(sql, args...), want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A controller whose embedded migration differs from the one the database
// applied refuses to start and names the file.
func TestControllerRefusesEditedMigration(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.ctrl.stop(t)
	if _, err := s.pool.Exec(context.Background(), `UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 6`); err != nil {
		t.Fatal(err)
	}
	p := start(t, "controller", "scanorama-controller", "serve", "--insecure", "--listen", s.addr, "--database-url", s.dbURL)
	select {
	case <-p.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("controller still running on a database with an edited migration:\n%s", p.Output())
	}
	if p.ExitCode() == 0 || !strings.Contains(p.Output(), "0006_ingest_commit.sql") {
		t.Fatalf("exit %d; output does not name 0006_ingest_commit.sql:\n%s", p.ExitCode(), p.Output())
	}
}

// emptyDatabase creates a database without the migrated template (the
// test cluster's URLs are superuser URLs) and drops it at cleanup.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	base := pgtest.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("upgrade_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(base, "/"+cfg.Database, "/"+name, 1)
}

// The previous release's database (its migrations from this repository's
// history, in controller/migrate/testdata) with data is upgraded by the new
// controller at start, which then serves the old hosts, history and jobs.
func TestUpgradeFromPreviousReleaseServesOldData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := emptyDatabase(t)
	old, err := migrate.Load(os.DirFS("../migrate/testdata/release-2b0e338"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	// What the old controller did: no checksum column.
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range old {
		if _, err := conn.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.File(), err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile("../migrate/testdata/release-data.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, string(data)); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	s := newStackOnDatabase(t, dbURL)
	all, _ := migrate.All()
	if n := s.count(`SELECT count(*) FROM schema_migrations WHERE checksum IS NOT NULL`); n != len(all) {
		t.Fatalf("%d migrations with checksums after the upgrade, want %d", n, len(all))
	}
	hosts, err := s.admin.ListHosts(s.ctx(), &pb.ListHostsRequest{Site: "lab"})
	if err != nil || len(hosts.GetHosts()) != 2 {
		t.Fatalf("ListHosts on the upgraded database: %v, %v", hosts, err)
	}
	h, err := s.admin.GetHost(s.ctx(), &pb.GetHostRequest{Site: "lab", IpAddress: "10.99.7.10"})
	if err != nil || h.GetHost().GetHostname() != "web1" || len(h.GetHost().GetPorts()) != 2 {
		t.Fatalf("GetHost 10.99.7.10: %v, %v", h, err)
	}
	changes, err := s.admin.ListHostChanges(s.ctx(), &pb.ListHostChangesRequest{Site: "lab"})
	if err != nil || len(changes.GetChanges()) != 6 {
		t.Fatalf("ListHostChanges: %d changes, %v; want 6", len(changes.GetChanges()), err)
	}
	job, err := s.admin.GetJob(s.ctx(), &pb.GetJobRequest{Id: "00000000-0000-0000-0000-0000000000c1"})
	if err != nil || job.GetJob().GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED {
		t.Fatalf("GetJob: %v, %v", job, err)
	}
	if got := targetNames(t, s, false); len(got) != 1 || got[0] != "web" {
		t.Fatalf("ListTargets: %v", got)
	}
}

// backup of a populated database restored into a fresh cluster: a
// controller on the copy serves the same hosts, history and jobs.
func TestBackupRestoreIntoFreshCluster(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	if _, err := s.admin.CreateSite(s.ctx(), &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	scanTarget(t, s, a, "10.99.15.0/24", host("10.99.15.10", 22, 80), host("10.99.15.11", 443))
	scanTarget(t, s, a, "10.99.16.0/24", host("10.99.16.10", 22))

	dump := filepath.Join(t.TempDir(), "scanorama.dump")
	ctl := filepath.Join(binDir, "scanorama-controller")
	if out, err := exec.Command(ctl, "backup", "--database-url", s.dbURL, "--out", dump).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if out, err := exec.Command(ctl, "backup", "--database-url", s.dbURL, "--out", dump).CombinedOutput(); err == nil || !strings.Contains(string(out), "--out") {
		t.Fatalf("backup over an existing file: %v\n%s; want a refusal naming --out", err, out)
	}
	srv := pgtest.NewPrivateCluster(t)
	fresh := srv.URL("scanorama")
	if out, err := exec.Command(ctl, "restore", "--database-url", fresh, "--in", dump).CombinedOutput(); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if out, err := exec.Command(ctl, "restore", "--database-url", fresh, "--in", dump).CombinedOutput(); err == nil || !strings.Contains(string(out), "empty database") {
		t.Fatalf("restore over a populated database: %v\n%s; want a refusal", err, out)
	}
	r := newStackOnDatabase(t, fresh)
	for _, q := range []struct {
		name string
		call func(c pb.AdminServiceClient) (proto.Message, error)
	}{
		{"ListHosts", func(c pb.AdminServiceClient) (proto.Message, error) {
			return c.ListHosts(s.ctx(), &pb.ListHostsRequest{Site: "lab"})
		}},
		{"ListHostChanges", func(c pb.AdminServiceClient) (proto.Message, error) {
			return c.ListHostChanges(s.ctx(), &pb.ListHostChangesRequest{Site: "lab"})
		}},
		{"ListJobs", func(c pb.AdminServiceClient) (proto.Message, error) {
			return c.ListJobs(s.ctx(), &pb.ListJobsRequest{Site: "lab"})
		}},
		{"ListTargets", func(c pb.AdminServiceClient) (proto.Message, error) {
			return c.ListTargets(s.ctx(), &pb.ListTargetsRequest{Site: "lab"})
		}},
	} {
		want, err := q.call(s.admin)
		if err != nil {
			t.Fatal(err)
		}
		got, err := q.call(r.admin)
		if err != nil {
			t.Fatalf("%s on the restored copy: %v", q.name, err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s differs after restore:\nrestored %v\noriginal %v", q.name, got, want)
		}
	}
	if n := r.count(`SELECT count(*) FROM hosts`); n != 3 {
		t.Fatalf("restored copy has %d hosts, want 3", n)
	}
}

// backup and restore of the managed PostgreSQL (--data-dir): the copy in a
// new data directory is a complete, current schema (migrate has nothing to
// do and every checksum matches).
func TestBackupRestoreManagedDataDir(t *testing.T) {
	t.Parallel()
	ctl := filepath.Join(binDir, "scanorama-controller")
	src, dst := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "dst")
	dump := filepath.Join(t.TempDir(), "managed.dump")
	run := func(want bool, args ...string) string {
		t.Helper()
		out, err := exec.Command(ctl, args...).CombinedOutput()
		if (err == nil) != want {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run(true, "migrate", "--data-dir", src)
	run(true, "backup", "--data-dir", src, "--out", dump)
	run(true, "restore", "--data-dir", dst, "--in", dump)
	if out := run(false, "restore", "--data-dir", dst, "--in", dump); !strings.Contains(out, "empty database") {
		t.Fatalf("second restore into %s: %s; want a refusal", dst, out)
	}
	all, _ := migrate.All()
	if out := run(true, "migrate", "--data-dir", dst); !strings.Contains(out, fmt.Sprintf("version=%d applied_now=0", len(all))) {
		t.Fatalf("migrate on the restored data dir:\n%s", out)
	}
}
