package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/scanorama/scanorama/controller/calendar"
	"github.com/scanorama/scanorama/controller/scheduler"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Bad schedules, windows and durations fail with INVALID_ARGUMENT naming
// the field and saying what is wrong, and write nothing.
func TestScheduleValidation(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	existing := setupTarget(t, s, "10.99.40.0/24", "22")[0].GetTargetId()
	base := func(edit func(r *pb.CreateTargetRequest)) func() error {
		return func() error {
			r := &pb.CreateTargetRequest{Site: "lab", Name: "sched", Network: "10.99.41.0/24", Ports: "22"}
			edit(r)
			_, err := s.admin.CreateTarget(ctx, r)
			return err
		}
	}
	update := func(r *pb.UpdateTargetRequest) func() error {
		return func() error {
			r.Id = existing
			_, err := s.admin.UpdateTarget(ctx, r)
			return err
		}
	}
	window := func(days, start, end string) *pb.ScanWindow {
		return &pb.ScanWindow{Days: days, Start: start, End: end}
	}
	before := s.count(`SELECT (SELECT count(*) FROM scan_targets) + (SELECT count(*) FROM scan_jobs) + (SELECT count(*) FROM scan_runs)`)
	targetBefore, err := s.admin.GetTarget(ctx, &pb.GetTargetRequest{Id: existing})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		call  func() error
		field string
		says  string
	}{
		{"cron out of range", base(func(r *pb.CreateTargetRequest) { r.Cron = "61 * * * *" }), "cron", "61 is out of range 0-59"},
		{"cron too few fields", base(func(r *pb.CreateTargetRequest) { r.Cron = "0 9 * *" }), "cron", "want 5 fields"},
		{"cron bad name", base(func(r *pb.CreateTargetRequest) { r.Cron = "0 9 * * mon-fry" }), "cron", `"fry" is neither a number nor a name`},
		{"cron never fires", base(func(r *pb.CreateTargetRequest) { r.Cron = "0 0 30 2 *" }), "cron", "never occurs"},
		{"cron and interval", base(func(r *pb.CreateTargetRequest) { r.Cron, r.Interval = "@daily", durationpb.New(time.Hour) }), "cron", "either interval or cron, not both"},
		{"unknown time zone", base(func(r *pb.CreateTargetRequest) { r.Cron, r.TimeZone = "@daily", "Mars/Olympus_Mons" }), "time_zone", "unknown time zone"},
		{"Local time zone", base(func(r *pb.CreateTargetRequest) { r.TimeZone = "Local" }), "time_zone", "name the zone"},
		{"window bad days", base(func(r *pb.CreateTargetRequest) { r.Window = window("mon-fry", "22:00", "06:00") }), "window.days", "neither a number nor a name"},
		{"window bad start", base(func(r *pb.CreateTargetRequest) { r.Window = window("mon-fri", "25:00", "06:00") }), "window.start", "between 00:00 and 23:59"},
		{"window without end", base(func(r *pb.CreateTargetRequest) { r.Window = window("", "22:00", "") }), "window.end", "HH:MM"},
		{"window always open", base(func(r *pb.CreateTargetRequest) { r.Window = window("*", "00:00", "24:00") }), "window", "omit the window"},
		{"max_duration too short", base(func(r *pb.CreateTargetRequest) { r.MaxDuration = durationpb.New(10 * time.Second) }), "max_duration", "between 60s"},
		{"max_duration negative", base(func(r *pb.CreateTargetRequest) { r.MaxDuration = durationpb.New(-time.Hour) }), "max_duration", "between 60s"},
		{"discovery first with the discovery profile", base(func(r *pb.CreateTargetRequest) { r.Profile, r.DiscoveryFirst, r.Ports = "discovery", true, "" }),
			"discovery_first", "discovery scan itself"},
		{"update: bad cron", update(&pb.UpdateTargetRequest{Cron: proto.String("*/0 * * * *")}), "cron", "step 0"},
		{"update: cron and interval", update(&pb.UpdateTargetRequest{Cron: proto.String("@hourly"), Interval: durationpb.New(time.Hour)}), "cron", "not both"},
		{"update: bad time zone", update(&pb.UpdateTargetRequest{TimeZone: proto.String("Berlin")}), "time_zone", "IANA"},
		{"update: bad window", update(&pb.UpdateTargetRequest{Window: window("sat", "7", "09:00")}), "window.start", "HH:MM"},
		{"update: bad max_duration", update(&pb.UpdateTargetRequest{MaxDuration: durationpb.New(time.Second)}), "max_duration", "between 60s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(tc.call())
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("code %s (%s), want InvalidArgument", st.Code(), st.Message())
			}
			if !strings.Contains(st.Message(), tc.field+": ") || !strings.Contains(st.Message(), tc.says) {
				t.Fatalf("message %q does not name %s with %q", st.Message(), tc.field, tc.says)
			}
		})
	}
	// Every violation at once.
	_, err = s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "sched", Network: "10.99.41.0/24", Ports: "22",
		Cron: "0 25 * * *", TimeZone: "Nowhere", Window: window("x", "", ""), MaxDuration: durationpb.New(time.Second)})
	for _, f := range []string{"cron: ", "time_zone: ", "window.days: ", "window.start: ", "window.end: ", "max_duration: "} {
		if !strings.Contains(status.Convert(err).Message(), f) {
			t.Errorf("combined error %q misses %s", status.Convert(err).Message(), f)
		}
	}
	if after := s.count(`SELECT (SELECT count(*) FROM scan_targets) + (SELECT count(*) FROM scan_jobs) + (SELECT count(*) FROM scan_runs)`); after != before {
		t.Fatalf("bad requests changed the row count %d -> %d", before, after)
	}
	targetAfter, err := s.admin.GetTarget(ctx, &pb.GetTargetRequest{Id: existing})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(targetBefore.GetTarget(), targetAfter.GetTarget()) {
		t.Fatalf("bad updates changed the target:\n%v\n%v", targetBefore.GetTarget(), targetAfter.GetTarget())
	}
}

// Schedules round-trip through the API in canonical form, and updates
// switch between interval and cron.
func TestScheduleFieldsRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	created, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{
		Site: "lab", Name: "nightly", Network: "10.99.42.0/24", Ports: "22", Cron: " 30 2  * * MON-FRI ", TimeZone: "Europe/Berlin",
		Window: &pb.ScanWindow{Days: "1-5", Start: "22:00", End: "6:00"}, MaxDuration: durationpb.New(2 * time.Hour), DiscoveryFirst: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	tg := created.GetTarget()
	w := tg.GetWindow()
	if tg.GetCron() != "30 2 * * MON-FRI" || tg.GetTimeZone() != "Europe/Berlin" || tg.GetInterval() != nil ||
		w.GetDays() != "mon-fri" || w.GetStart() != "22:00" || w.GetEnd() != "06:00" ||
		tg.GetMaxDuration().AsDuration() != 2*time.Hour || !tg.GetDiscoveryFirst() {
		t.Fatalf("target as stored: %v", tg)
	}
	// The next run: the next weekday 02:30 Berlin, or the window's opening if that lies outside it.
	berlin, _ := calendar.LoadZone("Europe/Berlin")
	cron, _ := calendar.ParseCron("30 2 * * mon-fri")
	nights := &calendar.Window{Days: 0b0111110, Start: 22 * 60, End: 6 * 60}
	want := scheduler.Plan{Cron: cron, Loc: berlin, Window: nights}.First(time.Now())
	next := tg.GetNextRunAt().AsTime()
	if !next.Equal(want) && !next.Equal(scheduler.Plan{Cron: cron, Loc: berlin, Window: nights}.First(tg.GetCreatedAt().AsTime())) {
		t.Fatalf("next run %s, want %s", next.In(berlin), want.In(berlin))
	}
	if inside, _, _ := nights.At(next, berlin); !inside {
		t.Fatalf("next run %s lies outside the window", next.In(berlin))
	}

	upd := func(r *pb.UpdateTargetRequest) *pb.Target {
		t.Helper()
		r.Id = tg.GetId()
		resp, err := s.admin.UpdateTarget(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetTarget()
	}
	// A ports edit leaves the schedule and the next run alone.
	if got := upd(&pb.UpdateTargetRequest{Ports: proto.String("22,443")}); !got.GetNextRunAt().AsTime().Equal(next) || got.GetCron() == "" {
		t.Fatalf("ports edit moved the next run: %v", got)
	}
	// An interval replaces the cron expression; the window stays, so the first run waits for it.
	got := upd(&pb.UpdateTargetRequest{Interval: durationpb.New(time.Hour)})
	if got.GetCron() != "" || got.GetInterval().AsDuration() != time.Hour || got.GetWindow() == nil {
		t.Fatalf("after setting an interval: %v", got)
	}
	plan := scheduler.Plan{Interval: time.Hour, Loc: berlin, Window: nights}
	if inside, _, _ := plan.Window.At(time.Now(), berlin); !inside {
		if want := plan.First(time.Now()); !got.GetNextRunAt().AsTime().Equal(want) {
			t.Fatalf("next run %s, want the window's opening %s", got.GetNextRunAt().AsTime(), want)
		}
	}
	// A cron expression replaces the interval; an empty window removes it; 0s removes the limit.
	got = upd(&pb.UpdateTargetRequest{Cron: proto.String("@daily"), TimeZone: proto.String(""), Window: &pb.ScanWindow{},
		MaxDuration: durationpb.New(0), DiscoveryFirst: proto.Bool(false)})
	if got.GetCron() != "@daily" || got.GetInterval() != nil || got.GetWindow() != nil || got.GetMaxDuration() != nil ||
		got.GetDiscoveryFirst() || got.GetTimeZone() != "UTC" {
		t.Fatalf("after setting cron: %v", got)
	}
	if n := got.GetNextRunAt().AsTime(); n.Hour() != 0 || n.Minute() != 0 || !n.After(time.Now()) {
		t.Fatalf("@daily next run %s", n)
	}
	// Disabled: nothing is due.
	if got := upd(&pb.UpdateTargetRequest{Enabled: proto.Bool(false)}); got.GetNextRunAt() != nil {
		t.Fatalf("disabled target still due at %s", got.GetNextRunAt().AsTime())
	}
	// Clearing cron leaves an on-demand target.
	got = upd(&pb.UpdateTargetRequest{Cron: proto.String(""), Enabled: proto.Bool(true)})
	if got.GetCron() != "" || got.GetInterval() != nil || got.GetNextRunAt() != nil {
		t.Fatalf("after clearing cron: %v", got)
	}
	// An interval runs at once; "0s" takes it away again.
	if got := upd(&pb.UpdateTargetRequest{Interval: durationpb.New(time.Hour)}); got.GetNextRunAt() == nil || got.GetNextRunAt().AsTime().After(time.Now()) {
		t.Fatalf("after setting an interval: %v", got)
	}
	if got := upd(&pb.UpdateTargetRequest{Interval: durationpb.New(0)}); got.GetInterval() != nil || got.GetNextRunAt() != nil {
		t.Fatalf("after clearing the interval: %v", got)
	}
}

// ScanNow on a discovery-first target creates discovery jobs; once an
// agent commits them, the controller's scheduler creates port-scan jobs
// for the hosts found up only.
func TestScheduleDiscoveryFirstScanNow(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "disc", Network: "10.99.43.0/24", Ports: "22", DiscoveryFirst: true})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetJobs()) != 1 || resp.GetJobs()[0].GetProfile() != "discovery" || resp.GetJobs()[0].GetRunId() == "" {
		t.Fatalf("ScanNow jobs %v; want one discovery job of a run", resp.GetJobs())
	}
	runID := resp.GetJobs()[0].GetRunId()
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	l := a.acquire(5 * time.Second)
	if l == nil || l.GetJobId() != resp.GetJobs()[0].GetId() {
		t.Fatalf("lease %v", l)
	}
	if _, err := a.send(context.Background(), l, [][]*pb.HostResult{{host("10.99.43.10"), host("10.99.43.20")}}, false); err != nil {
		t.Fatal(err)
	}
	// The scheduler (every 5 s) creates the port scan.
	deadline := time.Now().Add(30 * time.Second)
	var scan []*pb.Job
	for time.Now().Before(deadline) {
		list, err := s.admin.ListJobs(ctx, &pb.ListJobsRequest{TargetId: tgt.GetTarget().GetId(), Status: pb.JobStatus_JOB_STATUS_PENDING})
		if err != nil {
			t.Fatal(err)
		}
		if scan = list.GetJobs(); len(scan) > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(scan) != 1 {
		t.Fatalf("port-scan jobs %v; want one", scan)
	}
	j := scan[0]
	if j.GetProfile() != "default" || j.GetRunId() != runID || j.GetNetwork() != "10.99.43.0/27" || j.GetPorts() != "22" {
		t.Fatalf("port-scan job %v", j)
	}
	for _, e := range j.GetExclusions() {
		if strings.HasPrefix(e, "10.99.43.10/") || strings.HasPrefix(e, "10.99.43.20/") {
			t.Fatalf("host found up is excluded: %v", j.GetExclusions())
		}
	}
	// The agent gets it and may only report the hosts found up.
	l2 := a.acquire(5 * time.Second)
	if l2 == nil || l2.GetJobId() != j.GetId() {
		t.Fatalf("second lease %v", l2)
	}
	if _, err := a.send(context.Background(), l2, [][]*pb.HostResult{{host("10.99.43.11", 22)}}, false); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("result for a host not found up: %v; want InvalidArgument", err)
	}
}
