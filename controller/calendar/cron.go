// Package calendar evaluates wall-clock schedules in a time zone: 5-field
// cron expressions and weekly scan windows. It has no dependencies beyond
// the standard library and embeds the IANA time zone database, so zone
// names resolve on machines without tzdata installed.
//
// Wall-clock times and daylight saving time: a schedule names local times.
// A local time that does not exist on a day (skipped when clocks spring
// forward, e.g. 02:30 on the last Sunday of March in Europe/Berlin) happens
// at the end of the gap, the first instant that does exist (03:00 CEST);
// several skipped times of one gap collapse into that one instant. A local
// time that occurs twice (when clocks fall back) happens once, at its first
// occurrence.
package calendar

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // zone names must resolve without the system's tzdata
)

// Cron is a parsed 5-field cron expression:
//
//	minute hour day-of-month month day-of-week
//
// Each field is "*", a number, a range "a-b", a list "a,b-c" and any of
// these with a step ("*/15", "8-18/2", "5/10" meaning 5-max/10). Months may
// be written jan-dec, days of the week sun-sat (0 and 7 are both Sunday).
// As in Vixie cron, when both day-of-month and day-of-week are restricted
// (neither starts with "*") a day matches if either matches; otherwise both
// must. The macros @yearly (@annually), @monthly, @weekly, @daily
// (@midnight) and @hourly are accepted too.
type Cron struct {
	minute, hour, dom, month, dow uint64 // bit i set: value i matches
	domStar, dowStar              bool
	src                           string
}

// String returns the expression as given (trimmed, single-spaced).
func (c *Cron) String() string { return c.src }

type cronField struct {
	name     string
	min, max int
	names    map[string]int
}

var (
	monthNames = map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}
	dayNames = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

	fieldMinute = cronField{"minute", 0, 59, nil}
	fieldHour   = cronField{"hour", 0, 23, nil}
	fieldDOM    = cronField{"day-of-month", 1, 31, nil}
	fieldMonth  = cronField{"month", 1, 12, monthNames}
	fieldDOW    = cronField{"day-of-week", 0, 7, dayNames}

	macros = map[string]string{
		"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
		"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
	}
)

// daysIn is the most days each month can have (February: 29).
var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// ParseCron parses a cron expression. Errors say which field is wrong and why.
func ParseCron(expr string) (*Cron, error) {
	fields := strings.Fields(expr)
	src := strings.Join(fields, " ")
	if len(fields) == 1 && strings.HasPrefix(fields[0], "@") {
		m, ok := macros[strings.ToLower(fields[0])]
		if !ok {
			return nil, fmt.Errorf("unknown macro %q; use @yearly, @monthly, @weekly, @daily or @hourly", fields[0])
		}
		fields = strings.Fields(m)
	}
	if len(fields) != 5 {
		return nil, fmt.Errorf("want 5 fields (minute hour day-of-month month day-of-week), got %d in %q", len(fields), src)
	}
	c := &Cron{src: src}
	var err error
	set := func(dst *uint64, f cronField, s string) {
		if err == nil {
			*dst, err = parseCronField(f, s)
		}
	}
	set(&c.minute, fieldMinute, fields[0])
	set(&c.hour, fieldHour, fields[1])
	set(&c.dom, fieldDOM, fields[2])
	set(&c.month, fieldMonth, fields[3])
	set(&c.dow, fieldDOW, fields[4])
	if err != nil {
		return nil, err
	}
	if c.dow&(1<<7) != 0 { // 7 is Sunday too
		c.dow = c.dow&^(1<<7) | 1
	}
	c.domStar, c.dowStar = strings.HasPrefix(fields[2], "*"), strings.HasPrefix(fields[4], "*")
	if c.dowStar && !c.domStar && !c.domFitsSomeMonth() {
		return nil, fmt.Errorf("day-of-month %q never occurs in month %q (e.g. 30 February); the expression would never fire", fields[2], fields[3])
	}
	return c, nil
}

func (c *Cron) domFitsSomeMonth() bool {
	for m := 1; m <= 12; m++ {
		if c.month&(1<<m) != 0 && c.dom&((uint64(1)<<(daysIn[m]+1))-2) != 0 {
			return true
		}
	}
	return false
}

// parseCronField parses one field into a bit set of matching values.
func parseCronField(f cronField, s string) (uint64, error) {
	var set uint64
	for item := range strings.SplitSeq(s, ",") {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s field %q: %s", f.name, s, fmt.Sprintf(format, args...))
		}
		if item == "" {
			return 0, bad("empty list item")
		}
		rng, stepStr, hasStep := strings.Cut(item, "/")
		lo, hi := f.min, f.max
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, bad("%v", err)
			}
			if hi, err = f.value(b); err != nil {
				return 0, bad("%v", err)
			}
			if f.name == fieldDOW.name && hi == 0 && lo > 0 { // "fri-sun": Sunday as 7
				hi = 7
			}
			if lo > hi {
				return 0, bad("range %s runs backwards (ranges do not wrap around)", rng)
			}
		default:
			v, err := f.value(rng)
			if err != nil {
				return 0, bad("%v", err)
			}
			lo, hi = v, v
			if hasStep { // "5/10" means 5-max/10
				hi = f.max
			}
		}
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			switch {
			case err != nil:
				return 0, bad("step %q is not a number", stepStr)
			case n < 1:
				return 0, bad("step %d must be at least 1", n)
			case n > f.max-f.min:
				return 0, bad("step %d is larger than the field's range %d-%d", n, f.min, f.max)
			}
			step = n
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

func (f cronField) value(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing value in range")
	}
	if f.names != nil {
		if v, ok := f.names[strings.ToLower(s)]; ok {
			return v, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		if f.names != nil {
			return 0, fmt.Errorf("%q is neither a number nor a name (%s)", s, f.nameHint())
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < f.min || v > f.max {
		return 0, fmt.Errorf("%d is out of range %d-%d", v, f.min, f.max)
	}
	return v, nil
}

func (f cronField) nameHint() string {
	if f.name == "month" {
		return "jan-dec"
	}
	return "sun-sat"
}

// maxSearchDays bounds Next's search: a leap day may be eight years away
// (2096-02-29 is followed by 2104-02-29).
const maxSearchDays = 366*8 + 2

func (c *Cron) matchDay(d time.Time) bool {
	if c.month&(1<<int(d.Month())) == 0 {
		return false
	}
	domOK := c.dom&(1<<d.Day()) != 0
	dowOK := c.dow&(1<<int(d.Weekday())) != 0
	if c.domStar || c.dowStar {
		return domOK && dowOK
	}
	return domOK || dowOK
}

// Next returns the first time after "after" at which the expression fires
// in loc (see the package comment for daylight saving time), or the zero
// time if it never does.
func (c *Cron) Next(after time.Time, loc *time.Location) time.Time {
	a := after.In(loc)
	y, m, d := a.Date()
	hours, minutes := setBits(c.hour), setBits(c.minute)
	for i := range maxSearchDays {
		day := time.Date(y, m, d+i, 0, 0, 0, 0, time.UTC) // date arithmetic without DST
		if !c.matchDay(day) {
			continue
		}
		for _, h := range hours {
			for _, mi := range minutes {
				if t := Resolve(loc, day.Year(), day.Month(), day.Day(), h, mi); t.After(after) {
					return t
				}
			}
		}
	}
	return time.Time{}
}

func setBits(s uint64) []int {
	out := make([]int, 0, bits.OnesCount64(s))
	for s != 0 {
		i := bits.TrailingZeros64(s)
		out = append(out, i)
		s &^= 1 << i
	}
	return out
}

// Resolve returns the instant of a local wall-clock time in loc: its first
// occurrence when clocks fall back, the end of the gap when it was skipped.
func Resolve(loc *time.Location, y int, mo time.Month, d, h, mi int) time.Time {
	naive := time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
	u := naive.Unix()
	var best time.Time
	for _, probe := range [...]int64{u - 86400, u, u + 86400} {
		_, off := time.Unix(probe, 0).In(loc).Zone()
		c := time.Unix(u-int64(off), 0).In(loc)
		if sameWall(c, naive) && (best.IsZero() || c.Before(best)) {
			best = c
		}
	}
	if !best.IsZero() {
		return best
	}
	// Skipped: read with the offset in force before the gap, the wall time
	// lands inside the new zone period, which starts at the gap's end.
	_, off := time.Unix(u-86400, 0).In(loc).Zone()
	c := time.Unix(u-int64(off), 0).In(loc)
	if start, _ := c.ZoneBounds(); !start.IsZero() && !start.After(c) {
		return start.In(loc)
	}
	return c
}

func sameWall(t, naive time.Time) bool {
	y, m, d := t.Date()
	ny, nm, nd := naive.Date()
	return y == ny && m == nm && d == nd && t.Hour() == naive.Hour() && t.Minute() == naive.Minute()
}
