package admin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scanorama/scanorama/agent/scanspec"
	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/calendar"
	"github.com/scanorama/scanorama/controller/jobs"
	"github.com/scanorama/scanorama/controller/scheduler"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

const minInterval = time.Minute

// targetSpec is a fully validated target, ready to write.
type targetSpec struct {
	name       string
	network    netip.Prefix
	ports      scanspec.PortSpec
	profile    db.ScanProfile
	interval   pgtype.Int4
	enabled    bool
	exclusions []netip.Prefix
	// Schedule beyond the interval (see validateSchedule).
	cron           *calendar.Cron
	loc            *time.Location
	window         *calendar.Window
	maxDuration    pgtype.Int4
	discoveryFirst bool
}

// scheduleInput is what a request says about the schedule; nil means
// "not given" (unchanged on update, the default on create).
type scheduleInput struct {
	cron           *string
	timeZone       *string
	window         *pb.ScanWindow
	maxDuration    *durationpb.Duration
	discoveryFirst *bool
	// intervalSet: the request sets a non-zero interval.
	intervalSet bool
}

const maxMaxDuration = 31 * 24 * time.Hour

// validateSchedule applies and checks the schedule fields of a request on
// top of t (the current target on update), collecting all violations.
// Interval and cron exclude each other: giving both fails; giving one
// replaces the other.
func validateSchedule(t *targetSpec, in scheduleInput) []*apierr.FieldError {
	var bad []*apierr.FieldError
	if t.loc == nil {
		t.loc = time.UTC
	}
	if in.timeZone != nil {
		loc, err := calendar.LoadZone(strings.TrimSpace(*in.timeZone))
		if err != nil {
			bad = append(bad, apierr.Field("time_zone", "%v", err))
		} else {
			t.loc = loc
		}
	}
	if in.intervalSet {
		t.cron = nil
	}
	if in.cron != nil {
		switch expr := strings.TrimSpace(*in.cron); {
		case expr == "":
			t.cron = nil
		case in.intervalSet:
			bad = append(bad, apierr.Field("cron", "give either interval or cron, not both"))
		default:
			c, err := calendar.ParseCron(expr)
			if err != nil {
				bad = append(bad, apierr.Field("cron", "%v", err))
				break
			}
			t.cron, t.interval = c, pgtype.Int4{}
		}
	}
	if w := in.window; w != nil {
		if w.GetDays() == "" && w.GetStart() == "" && w.GetEnd() == "" {
			t.window = nil
		} else {
			days, derr := calendar.ParseDays(w.GetDays())
			if derr != nil {
				bad = append(bad, apierr.Field("window.days", "%v", derr))
			}
			start, serr := calendar.ParseClock(w.GetStart(), false)
			if serr != nil {
				bad = append(bad, apierr.Field("window.start", "%v", serr))
			}
			end, eerr := calendar.ParseClock(w.GetEnd(), true)
			if eerr != nil {
				bad = append(bad, apierr.Field("window.end", "%v", eerr))
			}
			if derr == nil && serr == nil && eerr == nil {
				win := calendar.Window{Days: days, Start: start, End: end}
				if win.AlwaysOpen() {
					bad = append(bad, apierr.Field("window", "open every day around the clock; omit the window instead"))
				}
				t.window = &win
			}
		}
	}
	if md := in.maxDuration; md != nil {
		d := md.AsDuration()
		switch {
		case md.CheckValid() != nil || d < 0 || (d > 0 && d < time.Minute) || d > maxMaxDuration:
			bad = append(bad, apierr.Field("max_duration", "must be between 60s and %s, e.g. \"7200s\"; \"0s\" removes the limit", maxMaxDuration))
		case d == 0:
			t.maxDuration = pgtype.Int4{}
		default:
			t.maxDuration = pgtype.Int4{Int32: int32(d / time.Second), Valid: true}
		}
	}
	if in.discoveryFirst != nil {
		t.discoveryFirst = *in.discoveryFirst
	}
	if t.discoveryFirst && scanspec.ScanType(t.profile.ScanType) == scanspec.ScanPing {
		bad = append(bad, apierr.Field("discovery_first", "profile %q is a discovery scan itself; a discovery first would only repeat it", t.profile.Name))
	}
	return bad
}

// plan is the target's schedule as the scheduler sees it.
func (t *targetSpec) plan() scheduler.Plan {
	p := scheduler.Plan{Cron: t.cron, Loc: t.loc, Window: t.window}
	if t.interval.Valid {
		p.Interval = time.Duration(t.interval.Int32) * time.Second
	}
	return p
}

// scheduleParams are the schedule columns of t.
func (t *targetSpec) scheduleParams() (cron pgtype.Text, tz string, days, start, end pgtype.Int2) {
	if t.cron != nil {
		cron = pgtype.Text{String: t.cron.String(), Valid: true}
	}
	if t.window != nil {
		days = pgtype.Int2{Int16: int16(t.window.Days), Valid: true}
		start = pgtype.Int2{Int16: int16(t.window.Start), Valid: true}
		end = pgtype.Int2{Int16: int16(t.window.End), Valid: true}
	}
	return cron, t.loc.String(), days, start, end
}

func (s *Server) profileByName(ctx context.Context, q *db.Queries, name string) (db.ScanProfile, error) {
	if name == "" {
		name = "default"
	}
	p, err := q.GetProfileByName(ctx, name)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, apierr.NotFound("profile", "no profile named %q; see ListProfiles", name)
	}
	if err != nil {
		return p, s.internal("look up profile", err)
	}
	return p, nil
}

// validateTarget checks the parts every target needs, collecting all violations.
func validateTarget(t *targetSpec, network, ports string, interval *durationpb.Duration, exclusions []string) []*apierr.FieldError {
	var bad []*apierr.FieldError
	if l := len(t.name); l == 0 || l > 128 {
		bad = append(bad, apierr.Field("name", "required, at most 128 characters"))
	}
	n, fe := parseCIDR("network", network)
	if fe != nil {
		bad = append(bad, fe)
	} else if _, err := jobs.Shard(n); err != nil {
		bad = append(bad, apierr.Field("network", "%v", err))
	}
	t.network = n
	if ports != "" {
		st := scanspec.ScanType(t.profile.ScanType)
		spec, err := scanspec.ParsePortsFor(st, ports)
		if err != nil {
			bad = append(bad, apierr.Field("ports", "%v", err))
		}
		t.ports = spec
	}
	if interval != nil {
		d := interval.AsDuration()
		if err := interval.CheckValid(); err != nil || (d != 0 && d < minInterval) || d > 366*24*time.Hour {
			bad = append(bad, apierr.Field("interval", "must be at least %s and at most a year, e.g. \"3600s\"", minInterval))
		} else if d > 0 {
			t.interval = pgtype.Int4{Int32: int32(d / time.Second), Valid: true}
		}
	}
	t.exclusions = t.exclusions[:0]
	for i, e := range exclusions {
		p, fe := parseCIDR(fmt.Sprintf("exclusions[%d]", i), e)
		if fe != nil {
			bad = append(bad, fe)
			continue
		}
		if fe == nil && n.IsValid() && !p.Overlaps(n) {
			bad = append(bad, apierr.Field(fmt.Sprintf("exclusions[%d]", i), "%s does not overlap the network %s", p, n))
			continue
		}
		t.exclusions = append(t.exclusions, p)
	}
	if len(bad) == 0 {
		if _, err := jobs.EffectiveOptions(t.profile, t.ports.String()); err != nil {
			var fe *scanspec.FieldError
			switch {
			case errors.Is(err, jobs.ErrNoPorts):
				bad = append(bad, apierr.Field("ports", "required: profile %q names no ports", t.profile.Name))
			case errors.As(err, &fe) && fe.Field == "ports":
				bad = append(bad, apierr.Field("ports", "%s", fe.Reason))
			default:
				bad = append(bad, apierr.Field("ports", "%v", err))
			}
		}
	}
	return bad
}

// CreateTarget implements AdminService.CreateTarget.
func (s *Server) CreateTarget(ctx context.Context, req *pb.CreateTargetRequest) (*pb.CreateTargetResponse, error) {
	site, err := s.siteByName(ctx, s.q, "site", req.GetSite())
	if err != nil {
		return nil, err
	}
	profile, err := s.profileByName(ctx, s.q, req.GetProfile())
	if err != nil {
		return nil, err
	}
	if site.ArchivedAt.Valid {
		return nil, apierr.FailedPrecondition("site", "site %q is archived; it takes no new targets", site.Name)
	}
	t := &targetSpec{name: req.GetName(), profile: profile, enabled: !req.GetDisabled()}
	bad := validateTarget(t, req.GetNetwork(), req.GetPorts(), req.GetInterval(), req.GetExclusions())
	in := scheduleInput{
		timeZone: &req.TimeZone, window: req.GetWindow(), maxDuration: req.GetMaxDuration(),
		discoveryFirst: &req.DiscoveryFirst, intervalSet: t.interval.Valid,
	}
	if req.GetCron() != "" {
		in.cron = &req.Cron
	}
	bad = append(bad, validateSchedule(t, in)...)
	if len(bad) > 0 {
		return nil, apierr.Invalid(bad...)
	}
	var id uuid.UUID
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		cron, tz, days, start, end := t.scheduleParams()
		row, err := q.CreateTarget(ctx, db.CreateTargetParams{
			SiteID: site.ID, Name: t.name, Network: t.network, ProfileID: profile.ID,
			ScanIntervalSeconds: t.interval, CronExpr: cron, TimeZone: tz, WindowDays: days, WindowStartMinute: start,
			WindowEndMinute: end, MaxDurationSeconds: t.maxDuration, DiscoveryFirst: t.discoveryFirst,
			Enabled: t.enabled, NextRunAt: nextRun(t, time.Now()), CreatedBy: actor(ctx),
		})
		if err != nil {
			return err
		}
		id = row.ID
		return writeTargetChildren(ctx, q, id, t, actor(ctx))
	})
	if err != nil {
		return nil, s.internal(fmt.Sprintf("create target %q in site %q", t.name, site.Name), err)
	}
	out, err := s.target(ctx, id)
	if err != nil {
		return nil, err
	}
	s.log.Info("target created", "target_id", id, "site", site.Name, "network", t.network, "ports", t.ports.String())
	return &pb.CreateTargetResponse{Target: out}, nil
}

// nextRun is when a target enabled or rescheduled at now runs first (see
// scheduler.Plan.First); unset when disabled or not scheduled.
func nextRun(t *targetSpec, now time.Time) pgtype.Timestamptz {
	if !t.enabled {
		return pgtype.Timestamptz{}
	}
	at := t.plan().First(now)
	return pgtype.Timestamptz{Time: at, Valid: !at.IsZero()}
}

func writeTargetChildren(ctx context.Context, q *db.Queries, id uuid.UUID, t *targetSpec, by string) error {
	if err := q.DeleteTargetPorts(ctx, id); err != nil {
		return err
	}
	for proto, ranges := range map[string][]scanspec.PortRange{"tcp": t.ports.TCP, "udp": t.ports.UDP} {
		for _, r := range ranges {
			if err := q.InsertTargetPortRange(ctx, db.InsertTargetPortRangeParams{
				TargetID: id, Protocol: proto, PortStart: int32(r.Start), PortEnd: int32(r.End),
			}); err != nil {
				return err
			}
		}
	}
	if err := q.DeleteTargetExclusions(ctx, id); err != nil {
		return err
	}
	for _, e := range t.exclusions {
		if err := q.InsertTargetExclusion(ctx, db.InsertTargetExclusionParams{TargetID: id, Network: e, CreatedBy: by}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) target(ctx context.Context, id uuid.UUID) (*pb.Target, error) {
	row, err := s.q.GetTarget(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && row.ScanTarget.PurgeRequestedAt.Valid) {
		return nil, apierr.NotFound("id", "no target %s", id)
	}
	if err != nil {
		return nil, s.internal("read target", err)
	}
	return s.targetPB(ctx, row.ScanTarget, row.SiteName, row.ProfileName)
}

func (s *Server) targetPB(ctx context.Context, t db.ScanTarget, site, profile string) (*pb.Target, error) {
	ports, err := jobs.TargetPorts(ctx, s.q, t.ID)
	if err != nil {
		return nil, s.internal("read target ports", err)
	}
	ex, err := s.q.ListTargetExclusions(ctx, t.ID)
	if err != nil {
		return nil, s.internal("read target exclusions", err)
	}
	out := &pb.Target{
		Id: t.ID.String(), Site: site, Name: t.Name, Network: t.Network.String(), Ports: ports,
		Profile: profile, Enabled: t.Enabled, CreatedAt: timestamppb.New(t.CreatedAt),
		UpdatedAt: timestamppb.New(t.UpdatedAt), CreatedBy: t.CreatedBy,
	}
	if t.ScanIntervalSeconds.Valid {
		out.Interval = durationpb.New(time.Duration(t.ScanIntervalSeconds.Int32) * time.Second)
	}
	out.Cron, out.TimeZone, out.DiscoveryFirst = t.CronExpr.String, t.TimeZone, t.DiscoveryFirst
	if t.WindowDays.Valid {
		w := calendar.Window{Days: uint8(t.WindowDays.Int16), Start: int(t.WindowStartMinute.Int16), End: int(t.WindowEndMinute.Int16)}
		out.Window = &pb.ScanWindow{Days: w.DaysString(), Start: calendar.FormatClock(w.Start), End: calendar.FormatClock(w.End)}
	}
	if t.MaxDurationSeconds.Valid {
		out.MaxDuration = durationpb.New(time.Duration(t.MaxDurationSeconds.Int32) * time.Second)
	}
	if t.NextRunAt.Valid {
		out.NextRunAt = timestamppb.New(t.NextRunAt.Time)
	}
	if t.ArchivedAt.Valid {
		out.ArchivedAt = timestamppb.New(t.ArchivedAt.Time)
	}
	for _, e := range ex {
		out.Exclusions = append(out.Exclusions, e.String())
	}
	return out, nil
}

// GetTarget implements AdminService.GetTarget.
func (s *Server) GetTarget(ctx context.Context, req *pb.GetTargetRequest) (*pb.GetTargetResponse, error) {
	id, err := parseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	t, err := s.target(ctx, id)
	if err != nil {
		return nil, err
	}
	return &pb.GetTargetResponse{Target: t}, nil
}

// ListTargets implements AdminService.ListTargets.
func (s *Server) ListTargets(ctx context.Context, req *pb.ListTargetsRequest) (*pb.ListTargetsResponse, error) {
	site, err := s.optionalSite(ctx, req.GetSite())
	if err != nil {
		return nil, err
	}
	var cur timeCursor
	rows, next, err := paginate(req, &cur, func(limit int32) ([]db.ListTargetsRow, error) {
		return s.q.ListTargets(ctx, db.ListTargetsParams{SiteID: site, AfterCreated: cur.Created, AfterID: cur.ID, RowLimit: limit,
			IncludeArchived: req.GetIncludeArchived()})
	}, func(r db.ListTargetsRow) timeCursor { return timeCursor{r.ScanTarget.CreatedAt, r.ScanTarget.ID} })
	if err != nil {
		return nil, s.internal("list targets", err)
	}
	resp := &pb.ListTargetsResponse{NextPageToken: next}
	for _, r := range rows {
		t, err := s.targetPB(ctx, r.ScanTarget, r.SiteName, r.ProfileName)
		if err != nil {
			return nil, err
		}
		resp.Targets = append(resp.Targets, t)
	}
	return resp, nil
}

// UpdateTarget implements AdminService.UpdateTarget: only the fields set change.
func (s *Server) UpdateTarget(ctx context.Context, req *pb.UpdateTargetRequest) (*pb.UpdateTargetResponse, error) {
	id, err := parseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		cur, err := q.GetTargetForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && cur.PurgeRequestedAt.Valid) {
			return apierr.NotFound("id", "no target %s", id)
		}
		if err != nil {
			return err
		}
		if cur.ArchivedAt.Valid {
			return apierr.FailedPrecondition("id", "target %q is archived; archived targets keep their history and do not change", cur.Name)
		}
		profile, err := q.GetProfileByID(ctx, cur.ProfileID)
		if err != nil {
			return err
		}
		if req.Profile != nil {
			if profile, err = s.profileByName(ctx, q, req.GetProfile()); err != nil {
				return err
			}
		}
		t := &targetSpec{name: cur.Name, profile: profile, enabled: cur.Enabled, interval: cur.ScanIntervalSeconds,
			maxDuration: cur.MaxDurationSeconds, discoveryFirst: cur.DiscoveryFirst}
		plan, err := scheduler.PlanFor(cur)
		if err != nil {
			return fmt.Errorf("stored schedule of target %s: %w", id, err)
		}
		t.cron, t.loc, t.window = plan.Cron, plan.Loc, plan.Window
		if req.Name != nil {
			t.name = req.GetName()
		}
		if req.Enabled != nil {
			t.enabled = req.GetEnabled()
		}
		network := cur.Network.String()
		if req.Network != nil {
			network = req.GetNetwork()
		}
		ports, err := jobs.TargetPorts(ctx, q, id)
		if err != nil {
			return err
		}
		if req.Ports != nil {
			ports = req.GetPorts()
		}
		exclusions := []string{}
		if req.GetUpdateExclusions() {
			exclusions = req.GetExclusions()
		} else {
			ex, err := q.ListTargetExclusions(ctx, id)
			if err != nil {
				return err
			}
			for _, e := range ex {
				exclusions = append(exclusions, e.String())
			}
		}
		before := scheduleKey(t)
		if req.GetInterval() != nil {
			t.interval = pgtype.Int4{} // "0s" clears it; validateTarget sets a valid one
		}
		bad := validateTarget(t, network, ports, req.GetInterval(), exclusions)
		bad = append(bad, validateSchedule(t, scheduleInput{
			cron: req.Cron, timeZone: req.TimeZone, window: req.GetWindow(), maxDuration: req.GetMaxDuration(),
			discoveryFirst: req.DiscoveryFirst, intervalSet: req.GetInterval() != nil && t.interval.Valid,
		})...)
		if len(bad) > 0 {
			return apierr.Invalid(bad...)
		}
		next := cur.NextRunAt
		if scheduleKey(t) != before || !next.Valid {
			// Rescheduled (or enabled): start over from now. Edits that
			// leave the schedule alone keep the next run where it was.
			next = nextRun(t, time.Now())
		}
		if !t.enabled || !t.plan().Scheduled() {
			next = pgtype.Timestamptz{}
		}
		cron, tz, days, start, end := t.scheduleParams()
		if _, err := q.UpdateTarget(ctx, db.UpdateTargetParams{
			Name: t.name, Network: t.network, ProfileID: profile.ID, ScanIntervalSeconds: t.interval,
			CronExpr: cron, TimeZone: tz, WindowDays: days, WindowStartMinute: start, WindowEndMinute: end,
			MaxDurationSeconds: t.maxDuration, DiscoveryFirst: t.discoveryFirst,
			Enabled: t.enabled, NextRunAt: next, ModifiedBy: actor(ctx), ID: id,
		}); err != nil {
			return err
		}
		return writeTargetChildren(ctx, q, id, t, actor(ctx))
	})
	if err != nil {
		return nil, s.internal("update target", err)
	}
	out, err := s.target(ctx, id)
	if err != nil {
		return nil, err
	}
	return &pb.UpdateTargetResponse{Target: out}, nil
}

// scheduleKey captures what decides when a target runs (the time zone
// only matters to cron and windows).
func scheduleKey(t *targetSpec) string {
	cron, tz, days, start, end := t.scheduleParams()
	if t.cron == nil && t.window == nil {
		tz = ""
	}
	return fmt.Sprint(t.enabled, t.interval, cron, tz, days, start, end)
}
