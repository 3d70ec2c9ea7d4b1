package calendar

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is a weekly scan window in local wall-clock time: on each day in
// Days it opens at Start and stays open until End, on the following day when
// End is not after Start (22:00-06:00 crosses midnight; Start == End means 24
// hours). Openings that touch or overlap (Mon-Sun 00:00-00:00) merge into
// one: a window only closes when no opening continues it.
type Window struct {
	// Days has bit i set for time.Weekday(i) (Sunday = 0): the days on
	// which the window opens.
	Days uint8
	// Start and End are minutes after local midnight, 0..1439.
	Start, End int
}

// AllDays is Window.Days for every day of the week.
const AllDays uint8 = 0x7f

// ParseDays parses the days a window opens in cron day-of-week syntax
// ("mon-fri", "sat,sun", "1-5", "fri-sun"); "" and "*" mean every day.
func ParseDays(s string) (uint8, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return AllDays, nil
	}
	set, err := parseCronField(fieldDOW, strings.ReplaceAll(s, " ", ""))
	if err != nil {
		return 0, errors.New(strings.TrimPrefix(err.Error(), fieldDOW.name+" field "))
	}
	if set&(1<<7) != 0 {
		set = set&^(1<<7) | 1
	}
	return uint8(set), nil
}

// ParseClock parses a time of day "HH:MM" into minutes after midnight.
// With end set, "24:00" is accepted and means midnight.
func ParseClock(s string, end bool) (int, error) {
	hh, mm, ok := strings.Cut(strings.TrimSpace(s), ":")
	h, herr := strconv.Atoi(hh)
	m, merr := strconv.Atoi(mm)
	switch {
	case !ok || herr != nil || merr != nil || len(mm) != 2 || len(hh) < 1 || len(hh) > 2:
		return 0, fmt.Errorf("want a time of day as HH:MM, e.g. \"22:00\"; got %q", s)
	case end && h == 24 && m == 0:
		return 0, nil
	case h < 0 || h > 23 || m < 0 || m > 59:
		return 0, fmt.Errorf("%q is not a time of day between 00:00 and 23:59", s)
	}
	return h*60 + m, nil
}

// FormatClock formats minutes after midnight as HH:MM.
func FormatClock(minutes int) string { return fmt.Sprintf("%02d:%02d", minutes/60, minutes%60) }

// DaysString renders Days canonically, Monday first: "mon-fri", "sat,sun",
// "*" for every day.
func (w Window) DaysString() string {
	if w.Days&AllDays == AllDays {
		return "*"
	}
	names := [8]string{"", "mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	has := func(i int) bool { return w.Days&(1<<(i%7)) != 0 } // i in 1..7, 7 = Sunday
	var parts []string
	for i := 1; i <= 7; i++ {
		if !has(i) {
			continue
		}
		j := i
		for j+1 <= 7 && has(j+1) {
			j++
		}
		switch j {
		case i:
			parts = append(parts, names[i])
		case i + 1:
			parts = append(parts, names[i], names[j])
		default:
			parts = append(parts, names[i]+"-"+names[j])
		}
		i = j
	}
	return strings.Join(parts, ",")
}

// Minutes is how long each opening lasts in wall-clock minutes (1..1440).
func (w Window) Minutes() int {
	if d := (w.End - w.Start + 1440) % 1440; d > 0 {
		return d
	}
	return 1440
}

// AlwaysOpen reports whether the window never closes (every day, 24 hours).
func (w Window) AlwaysOpen() bool { return w.Days&AllDays == AllDays && w.Minutes() == 1440 }

// At reports whether t lies inside the window in loc. Inside, opens and
// closes bound the current opening (closes is zero if it never closes);
// outside, they bound the next one.
func (w Window) At(t time.Time, loc *time.Location) (inside bool, opens, closes time.Time) {
	if w.Days&AllDays == 0 {
		return false, time.Time{}, time.Time{}
	}
	y, m, d := t.In(loc).Date()
	type span struct{ open, close time.Time }
	var spans []span
	const before, after = 2, 8 // an opening lasts at most a day; one opens at least weekly
	for i := -before; i <= after; i++ {
		day := time.Date(y, m, d+i, 0, w.Start, 0, 0, time.UTC) // wall-clock arithmetic, no DST
		if w.Days&(1<<day.Weekday()) == 0 {
			continue
		}
		end := day.Add(time.Duration(w.Minutes()) * time.Minute)
		o := Resolve(loc, day.Year(), day.Month(), day.Day(), day.Hour(), day.Minute())
		c := Resolve(loc, end.Year(), end.Month(), end.Day(), end.Hour(), end.Minute())
		if !c.After(o) {
			continue // the whole opening fell into a DST gap
		}
		if n := len(spans); n > 0 && !o.After(spans[n-1].close) {
			spans[n-1].close = later(spans[n-1].close, c)
			continue
		}
		spans = append(spans, span{o, c})
	}
	for i, s := range spans {
		if t.Before(s.open) {
			return false, s.open, s.close
		}
		if t.Before(s.close) {
			if i == len(spans)-1 && w.AlwaysOpen() {
				return true, s.open, time.Time{}
			}
			return true, s.open, s.close
		}
	}
	return false, time.Time{}, time.Time{}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// LoadZone resolves an IANA time zone name; "" is UTC. "Local" is refused:
// it would mean different things on different controllers.
func LoadZone(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, errors.New(`"Local" depends on the controller's machine; name the zone, e.g. "Europe/Berlin"`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q; use an IANA name such as \"Europe/Berlin\" or \"UTC\"", name)
	}
	return loc, nil
}
