package scheduler

import (
	"fmt"
	"time"

	"github.com/scanorama/scanorama/controller/calendar"
	"github.com/scanorama/scanorama/gen/db"
)

// Plan is a target's schedule, parsed: an interval or a cron expression in
// a time zone, and an optional scan window.
type Plan struct {
	Interval time.Duration
	Cron     *calendar.Cron
	Loc      *time.Location
	Window   *calendar.Window
}

// PlanFor parses a target's schedule columns.
func PlanFor(t db.ScanTarget) (Plan, error) {
	loc, err := calendar.LoadZone(t.TimeZone)
	if err != nil {
		return Plan{}, fmt.Errorf("time_zone: %w", err)
	}
	p := Plan{Loc: loc}
	if t.ScanIntervalSeconds.Valid {
		p.Interval = time.Duration(t.ScanIntervalSeconds.Int32) * time.Second
	}
	if t.CronExpr.Valid {
		if p.Cron, err = calendar.ParseCron(t.CronExpr.String); err != nil {
			return Plan{}, fmt.Errorf("cron: %w", err)
		}
	}
	if t.WindowDays.Valid {
		p.Window = &calendar.Window{Days: uint8(t.WindowDays.Int16), Start: int(t.WindowStartMinute.Int16), End: int(t.WindowEndMinute.Int16)}
	}
	return p, nil
}

// Scheduled reports whether the plan schedules runs at all.
func (p Plan) Scheduled() bool { return p.Interval > 0 || p.Cron != nil }

// First is when a target enabled (or rescheduled) at now runs first: at
// once for an interval, at the next cron time for cron, and in either case
// not before its scan window opens. Zero when nothing is scheduled.
func (p Plan) First(now time.Time) time.Time {
	var at time.Time
	switch {
	case p.Cron != nil:
		at = p.Cron.Next(now.Add(-time.Nanosecond), p.Loc) // a cron time equal to now is still due
	case p.Interval > 0:
		at = now
	default:
		return time.Time{}
	}
	if p.Window != nil {
		if inside, opens, _ := p.Window.At(at, p.Loc); !inside && !opens.IsZero() {
			at = opens
		}
	}
	return at
}

// Next is the run after the one scheduled for prev, as seen at now: the
// following slot, or, when that has passed too (the scheduler was down),
// the first slot after now, so missed slots collapse into one run.
func (p Plan) Next(prev, now time.Time) time.Time {
	if p.Cron != nil {
		next := p.Cron.Next(prev, p.Loc)
		if !next.After(now) {
			next = p.Cron.Next(now, p.Loc)
		}
		return next
	}
	next := prev.Add(p.Interval)
	if !next.After(now) {
		next = now.Add(p.Interval)
	}
	return next
}

// MaxJitter bounds the random delay added to a run due at at: a tenth of
// the time to the slot after it (the interval, or the gap to the next cron
// time), at most five minutes. A jittered run therefore always happens
// before the following slot.
func (p Plan) MaxJitter(at time.Time) time.Duration {
	if p.Cron != nil {
		following := p.Cron.Next(at, p.Loc)
		if following.IsZero() {
			return 0
		}
		return MaxJitter(following.Sub(at))
	}
	return MaxJitter(p.Interval)
}
