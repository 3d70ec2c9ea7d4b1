package calendar

import (
	"strings"
	"testing"
	"time"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParseCronErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ expr, want string }{
		{"", "want 5 fields"},
		{"* * * *", "want 5 fields (minute hour day-of-month month day-of-week), got 4"},
		{"* * * * * *", "got 6"},
		{"60 * * * *", `minute field "60": 60 is out of range 0-59`},
		{"* 24 * * *", `hour field "24": 24 is out of range 0-23`},
		{"* * 0 * *", `day-of-month field "0": 0 is out of range 1-31`},
		{"* * 32 * *", "32 is out of range 1-31"},
		{"* * * 13 *", `month field "13": 13 is out of range 1-12`},
		{"* * * 0 *", "0 is out of range 1-12"},
		{"* * * * 8", `day-of-week field "8": 8 is out of range 0-7`},
		{"* * * jnu *", `"jnu" is neither a number nor a name (jan-dec)`},
		{"* * * * mun", `"mun" is neither a number nor a name (sun-sat)`},
		{"x * * * *", `"x" is not a number`},
		{"5-1 * * * *", "range 5-1 runs backwards"},
		{"* * * * sat-mon", "range sat-mon runs backwards"},
		{"1- * * * *", "missing value in range"},
		{"*/0 * * * *", "step 0 must be at least 1"},
		{"*/x * * * *", `step "x" is not a number`},
		{"*/60 * * * *", "step 60 is larger than the field's range 0-59"},
		{"1,,2 * * * *", "empty list item"},
		{"0 0 30 2 *", "never occurs"},
		{"0 0 31 apr,jun,sep,nov *", "never occurs"},
		{"@often", `unknown macro "@often"`},
	}
	for _, tc := range cases {
		_, err := ParseCron(tc.expr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCron(%q) = %v, want an error containing %q", tc.expr, err, tc.want)
		}
	}
	for _, ok := range []string{"0 0 30 2 mon", "0 0 29 2 *", "*/15 9-17 * * mon-fri", "0 0 * * 7", "@daily", "@Weekly",
		"5/10 * * * *", "0 22 * * fri-sun", "0 0 1,15 jan-mar,oct *", "  0   3 * *   * "} {
		if _, err := ParseCron(ok); err != nil {
			t.Errorf("ParseCron(%q): %v", ok, err)
		}
	}
}

func TestCronNext(t *testing.T) {
	t.Parallel()
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	cases := []struct {
		name, expr, zone, after, want string
	}{
		{"every 15 minutes", "*/15 * * * *", "UTC", "2026-11-29T12:07:00Z", "2026-11-29T12:15:00Z"},
		{"exactly on a slot is not after it", "*/15 * * * *", "UTC", "2026-11-29T12:15:00Z", "2026-11-29T12:30:00Z"},
		{"seconds count", "*/15 * * * *", "UTC", "2026-11-29T12:14:59Z", "2026-11-29T12:15:00Z"},
		{"hour wraps to the next day", "30 23 * * *", "UTC", "2026-11-29T23:30:00Z", "2026-11-30T23:30:00Z"},
		{"weekdays skip the weekend", "0 9 * * mon-fri", "UTC", "2026-11-27T09:00:00Z", "2026-11-30T09:00:00Z"},
		{"Sunday as 7", "0 0 * * 7", "UTC", "2026-11-25T00:00:00Z", "2026-11-29T00:00:00Z"},
		{"fri-sun includes Sunday", "0 12 * * fri-sun", "UTC", "2026-11-28T12:00:00Z", "2026-11-29T12:00:00Z"},
		{"31st skips 30-day months", "0 0 31 * *", "UTC", "2026-04-15T00:00:00Z", "2026-05-31T00:00:00Z"},
		{"31st from the end of January skips February", "0 0 31 * *", "UTC", "2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"year end", "0 0 1 1 *", "UTC", "2026-12-31T23:59:00Z", "2027-01-01T00:00:00Z"},
		{"Feb 29 waits for a leap year", "0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"Feb 29 skips 2100", "0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"},
		{"last days of February in a leap year", "0 0 28,29 2 *", "UTC", "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"day-of-month or day-of-week when both restricted", "0 12 1 * mon", "UTC", "2026-11-29T00:00:00Z", "2026-11-30T12:00:00Z"},
		{"... and the 1st, a Tuesday", "0 12 1 * mon", "UTC", "2026-11-30T12:00:00Z", "2026-12-01T12:00:00Z"},
		{"day-of-month starting with * means and", "0 12 */2 * mon", "UTC", "2026-11-29T00:00:00Z", "2026-12-07T12:00:00Z"},
		{"month names", "0 6 1 mar,sep *", "UTC", "2026-03-02T00:00:00Z", "2026-09-01T06:00:00Z"},
		{"step from a start", "5/20 * * * *", "UTC", "2026-11-29T12:46:00Z", "2026-11-29T13:05:00Z"},
		{"@hourly", "@hourly", "UTC", "2026-11-29T12:00:00Z", "2026-11-29T13:00:00Z"},
		{"local time in a zone", "0 9 * * *", "Europe/Berlin", "2026-11-29T12:00:00Z", "2026-11-30T08:00:00Z"},
		{"summer time in a zone", "0 9 * * *", "Europe/Berlin", "2026-07-01T12:00:00Z", "2026-07-02T07:00:00Z"},
		{"half-hour zone", "0 9 * * *", "Asia/Kolkata", "2026-11-29T12:00:00Z", "2026-11-30T03:30:00Z"},
		// Europe/Berlin springs forward on 2026-03-29 at 02:00 CET to 03:00 CEST (01:00 UTC).
		{"skipped local time runs at the gap's end", "30 2 * * *", "Europe/Berlin", "2026-03-28T02:00:00Z", "2026-03-29T01:00:00Z"},
		{"and on its own time the day after", "30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
		{"before the gap", "*/30 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", "2026-03-29T00:30:00Z"},
		{"times in the gap collapse into one", "*/30 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z"},
		{"after the collapsed run", "*/30 * * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"},
		{"hourly at :30 over the gap", "30 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z"},
		// Europe/Berlin falls back on 2026-10-25 at 03:00 CEST to 02:00 CET (01:00 UTC).
		{"repeated local time runs at its first occurrence", "30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
		{"and not again an hour later", "30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
		{"every 30 minutes skips the repeated hour", "*/30 * * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z"},
		{"Sunday of the change", "0 3 * * sun", "Europe/Berlin", "2026-10-24T00:00:00Z", "2026-10-25T02:00:00Z"},
		// America/New_York springs forward on 2026-03-08 02:00 EST to 03:00 EDT (07:00 UTC).
		{"New York gap", "0 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
		// Australia/Lord_Howe moves by 30 minutes: 2026-10-04 02:00 -> 02:30 (15:30 UTC on the 3rd).
		{"half-hour DST gap", "15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00Z", "2026-10-03T15:30:00Z"},
	}
	for _, tc := range cases {
		c, err := ParseCron(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := c.Next(utc(tc.after), zone(t, tc.zone))
		if want := utc(tc.want); !got.Equal(want) {
			t.Errorf("%s: Next(%q in %s, after %s) = %s, want %s", tc.name, tc.expr, tc.zone, tc.after, got.UTC().Format(time.RFC3339), tc.want)
		}
	}
}

// fires is the specification Next implements, checked minute by minute:
// instant t fires if a matching local time maps to it — its first
// occurrence, or the end of the gap it was skipped in.
func fires(c *Cron, t time.Time, loc *time.Location) bool {
	lt := t.In(loc)
	match := func(w time.Time) bool {
		return c.matchDay(w) && c.hour&(1<<w.Hour()) != 0 && c.minute&(1<<w.Minute()) != 0
	}
	wall := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), lt.Minute(), 0, 0, time.UTC)
	if match(wall) {
		// Only the first occurrence: the same wall time must not have been shown earlier.
		first := true
		for back := 15 * time.Minute; back <= 3*time.Hour; back += 15 * time.Minute {
			if e := t.Add(-back).In(loc); e.Day() == lt.Day() && e.Hour() == lt.Hour() && e.Minute() == lt.Minute() {
				first = false
			}
		}
		if first {
			return true
		}
	}
	_, offNow := lt.Zone()
	_, offBefore := t.Add(-time.Minute).In(loc).Zone()
	if start, _ := lt.ZoneBounds(); start.Equal(t) && offNow > offBefore { // t ends a gap
		for w := wall.Add(-time.Duration(offNow-offBefore) * time.Second); w.Before(wall); w = w.Add(time.Minute) {
			if match(w) {
				return true
			}
		}
	}
	return false
}

func TestCronNextMatchesMinuteByMinute(t *testing.T) {
	t.Parallel()
	exprs := []string{"*/15 * * * *", "30 2 * * *", "0 2,3 * * *", "*/7 1-4 * * sun", "45 1 25-31 3,10 *", "0 0 * * *", "10,40 * * * *"}
	spans := []struct{ zone, from string }{
		{"Europe/Berlin", "2026-03-28T20:00:00Z"},
		{"Europe/Berlin", "2026-10-24T20:00:00Z"},
		{"America/New_York", "2026-03-07T20:00:00Z"},
		{"America/New_York", "2026-10-31T20:00:00Z"},
		{"Australia/Lord_Howe", "2026-04-04T10:00:00Z"},
		{"Australia/Lord_Howe", "2026-10-03T10:00:00Z"},
		{"UTC", "2028-02-28T20:00:00Z"},
	}
	for _, sp := range spans {
		loc := zone(t, sp.zone)
		from, _ := time.Parse(time.RFC3339, sp.from)
		for _, e := range exprs {
			c, err := ParseCron(e)
			if err != nil {
				t.Fatal(err)
			}
			at := from
			for range 6 {
				next := c.Next(at, loc)
				// Walk minute by minute over the first days (far jumps are in TestCronNext).
				for m := at.Truncate(time.Minute).Add(time.Minute); m.Before(next) && m.Sub(at) < 3*24*time.Hour; m = m.Add(time.Minute) {
					if fires(c, m, loc) {
						t.Fatalf("%q in %s: Next(%s) = %s skips %s", e, sp.zone, at.UTC(), next.UTC(), m.UTC())
					}
				}
				if !fires(c, next, loc) {
					t.Fatalf("%q in %s: Next(%s) = %s, which does not fire", e, sp.zone, at.UTC(), next.UTC())
				}
				at = next
			}
		}
	}
}
