package e2e_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// DeleteTarget/DeleteSite refusals count the result rows in archived
// months too (the archive schema is not readable by the API's database
// role; the count still works through the real controller).
func TestDeleteRefusalCountsArchivedMonths(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	kept := scanTarget(t, s, a, "10.99.21.0/24", host("10.99.21.10", 22, 80), host("10.99.21.11", 22))
	other := scanTarget(t, s, a, "10.99.22.0/24", host("10.99.22.10", 22))
	// Two older rows of each target's job in June 2026, then June goes to
	// the archive schema as retention would move it.
	if _, err := s.pool.Exec(ctx, `SELECT ensure_port_scan_partitions('2026-06-01', 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO port_scans (job_id, host_id, port, protocol, state, scanned_at)
		SELECT job_id, host_id, port + 1000, protocol, state, timestamptz '2026-06-10' FROM port_scans WHERE port = 22`); err != nil {
		t.Fatal(err)
	}
	var moved []string
	if err := s.pool.QueryRow(ctx, `SELECT archive_port_scans_before('2026-07-01')`).Scan(&moved); err != nil || len(moved) != 1 {
		t.Fatalf("archive June: %v %v", moved, err)
	}
	if n := s.count(`SELECT count(*) FROM archive.port_scans_2026_06`); n != 3 {
		t.Fatalf("archived rows = %d, want 3", n)
	}
	_, err := s.admin.DeleteTarget(ctx, &pb.DeleteTargetRequest{Id: kept.GetId()})
	wantCode(t, err, codes.FailedPrecondition, "1 jobs", "5 result rows (port_scans, 2 of them in archived months)")
	_, err = s.admin.DeleteTarget(ctx, &pb.DeleteTargetRequest{Id: other.GetId()})
	wantCode(t, err, codes.FailedPrecondition, "1 jobs", "2 result rows (port_scans, 1 of them in archived months)")
	_, err = s.admin.DeleteSite(ctx, &pb.DeleteSiteRequest{Name: "lab"})
	wantCode(t, err, codes.FailedPrecondition, "2 jobs", "7 result rows (port_scans, 3 of them in archived months)", "3 hosts")
	if n := s.count(`SELECT count(*) FROM port_scans`) + s.count(`SELECT count(*) FROM archive.port_scans_2026_06`); n != 7 {
		t.Fatalf("%d result rows after refused deletes, want 7", n)
	}
}

// Archived targets and sites come back with UnarchiveTarget and
// UnarchiveSite: listed and editable again, with their jobs and results;
// targets come back disabled. Bad input is InvalidArgument naming the
// field, wrong states FailedPrecondition, and refusals write nothing.
func TestUnarchiveTargetAndSite(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	one := scanTarget(t, s, a, "10.99.31.0/24", host("10.99.31.10", 22))
	two := scanTarget(t, s, a, "10.99.32.0/24", host("10.99.32.10", 22))
	alone := scanTarget(t, s, a, "10.99.33.0/24", host("10.99.33.10", 22))

	for _, tc := range []struct {
		name  string
		req   *pb.UnarchiveTargetRequest
		code  codes.Code
		field string
	}{
		{"no id", &pb.UnarchiveTargetRequest{}, codes.InvalidArgument, "id"},
		{"bad id", &pb.UnarchiveTargetRequest{Id: "nope"}, codes.InvalidArgument, "id"},
		{"unknown id", &pb.UnarchiveTargetRequest{Id: "00000000-0000-0000-0000-000000000001"}, codes.NotFound, "id"},
		{"not archived", &pb.UnarchiveTargetRequest{Id: one.GetId()}, codes.FailedPrecondition, "not archived"},
	} {
		_, err := s.admin.UnarchiveTarget(ctx, tc.req)
		wantCode(t, err, tc.code, tc.field)
	}
	_, err := s.admin.UnarchiveSite(ctx, &pb.UnarchiveSiteRequest{})
	wantCode(t, err, codes.InvalidArgument, "name")
	_, err = s.admin.UnarchiveSite(ctx, &pb.UnarchiveSiteRequest{Name: "nosuch"})
	wantCode(t, err, codes.NotFound, "name")
	_, err = s.admin.UnarchiveSite(ctx, &pb.UnarchiveSiteRequest{Name: "lab"})
	wantCode(t, err, codes.FailedPrecondition, "not archived")

	// A target archived on its own comes back by itself.
	if _, err := s.admin.DeleteTarget(ctx, &pb.DeleteTargetRequest{Id: one.GetId(), Archive: true}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.admin.UnarchiveTarget(ctx, &pb.UnarchiveTargetRequest{Id: one.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetTarget(); got.GetArchivedAt() != nil || got.GetEnabled() || got.GetName() != one.GetName() {
		t.Fatalf("unarchived target reads %v; want listed, disabled", got)
	}
	if got := targetNames(t, s, false); len(got) != 3 {
		t.Fatalf("ListTargets after unarchiving: %v; want all three", got)
	}
	if _, err := s.admin.UpdateTarget(ctx, &pb.UpdateTargetRequest{Id: one.GetId(), Enabled: proto.Bool(true)}); err != nil {
		t.Fatalf("enable the unarchived target: %v", err)
	}
	if _, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: one.GetId()}); err != nil {
		t.Fatalf("ScanNow of the unarchived target: %v", err)
	}

	// A site: the targets archived with it come back; one archived before
	// on its own stays archived.
	if _, err := s.admin.DeleteTarget(ctx, &pb.DeleteTargetRequest{Id: alone.GetId(), Archive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.DeleteSite(ctx, &pb.DeleteSiteRequest{Name: "lab", Archive: true}); err != nil {
		t.Fatal(err)
	}
	_, err = s.admin.UnarchiveTarget(ctx, &pb.UnarchiveTargetRequest{Id: two.GetId()})
	wantCode(t, err, codes.FailedPrecondition, "archived site", "UnarchiveSite")
	if n := s.count(`SELECT count(*) FROM scan_targets WHERE archived_at IS NULL`); n != 0 {
		t.Fatalf("a refused unarchive brought back %d targets", n)
	}
	site, err := s.admin.UnarchiveSite(ctx, &pb.UnarchiveSiteRequest{Name: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	if site.GetSite().GetArchivedAt() != nil || site.GetTargetsUnarchived() != 2 {
		t.Fatalf("UnarchiveSite: %v; want the site back with 2 targets", site)
	}
	sites, err := s.admin.ListSites(ctx, &pb.ListSitesRequest{})
	if err != nil || len(sites.GetSites()) != 1 {
		t.Fatalf("ListSites after unarchiving: %v %v", sites, err)
	}
	if got := targetNames(t, s, false); len(got) != 2 {
		t.Fatalf("ListTargets after UnarchiveSite: %v; want the two archived with the site", got)
	}
	if got := mustTarget(t, s, alone.GetId()); got.GetArchivedAt() == nil {
		t.Fatal("a target archived before the site came back with it")
	}
	// Nothing of what they had found was lost on the way.
	if n := s.count(`SELECT count(*) FROM port_scans`); n != 3 {
		t.Fatalf("port_scans = %d, want 3", n)
	}
}
